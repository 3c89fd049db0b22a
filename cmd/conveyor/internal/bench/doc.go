// Package bench measures conveyor's throughput and latency against the raw
// Redis floor, in one run, so that every ratio shares the machine's
// conditions. It backs the `conveyor bench` command.
//
// # Scenarios
//
//   - floor: raw go-redis, no framework. Pipelined XADD of N entries (row
//     floor-publish), then 8 goroutines reading with XREADGROUP COUNT 100 and
//     acknowledging each batch with one pipelined XACK + XDEL (row floor),
//     then N more entries through the shape of a job server: one reader
//     handing each entry to one of --concurrency worker goroutines and one
//     goroutine acknowledging what they hand it (row floor-workers).
//   - publish: conveyor's Redis broker publishing N jobs one at a time from
//     one goroutine (publish-single), from Concurrency goroutines
//     (publish-concurrent), and in batches of 100 (publish-batch).
//   - process: N jobs enqueued beforehand (not timed) and processed by a
//     conveyor server on the Redis broker with a no-op handler and no
//     middleware, timed from Run until the broker acknowledged all N.
//   - process-stack: the same with the recommended middleware stack.
//   - latency: jobs published one at a time at a fixed rate while a server
//     runs; publish → handler start (latency) and publish → acknowledged by
//     Redis (latency-ack) percentiles. Before them, raw go-redis at the same
//     rate: XADD → its entry read by a blocked XREADGROUP (floor-latency).
//   - memory: process on the in-memory broker.
//
// Each scenario uses a fresh key namespace and deletes its keys at the end.
// Every run of the whole list happens in turn (run 1 of every scenario, then
// run 2, …) and each row reports the median of its runs.
package bench
