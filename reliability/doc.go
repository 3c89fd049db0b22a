// Package reliability holds conveyor's fault and load tests: they do the
// damage for real, against a real Redis, and count every job.
//
// The package has no API; it exists for its tests. Run the whole suite with
//
//	go test -race -run Fault ./reliability/
//
// # What each test proves
//
// Every fault test publishes a known set of job IDs and ends with the same
// accounting: each ID was processed successfully or sits in the dead-letter
// topic, none is missing, and the topic holds nothing more (no unread,
// pending or delayed entry). Where a worker crashes or loses a lease,
// duplicates are allowed — delivery is at-least-once — but counted and
// reported with t.Logf; where none should occur (a graceful shutdown, a long
// job kept by heartbeat), a duplicate fails the test.
//
//   - TestFaultWorkerSIGKILL: a worker process is killed with SIGKILL while
//     its handlers hold jobs; a second worker recovers them after the lease.
//   - TestFaultCrashLoop: a job whose handler kills the process every time is
//     dead-lettered with reason max-deliveries while a supervisor restarts
//     the worker and the rest of the topic keeps flowing.
//   - TestFaultRedisRestart: Redis with AOF (appendfsync always) is stopped
//     and started mid-run; the server logs the outage, backs off, reconnects
//     and finishes.
//   - TestFaultNetworkCut: a TCP proxy between worker and Redis drops every
//     connection and refuses new ones, twice; the server recovers by itself.
//   - TestFaultGracefulShutdown and TestFaultGracefulShutdownInProcess:
//     SIGTERM to a worker process using signal.NotifyContext, and context
//     cancellation in process, with many jobs in flight; Run returns, and
//     what did not finish is recovered by another worker.
//   - TestFaultLongJob: a handler running three leases keeps its job by
//     heartbeat; a second consumer never receives it.
//   - TestFaultPanicStorm: handlers panic on every third job; the worker
//     stays up and the panicking jobs are retried, then dead-lettered.
//   - TestFaultSoak: many jobs through four servers sharing one consumer
//     group, some failing once and some for good; processed + dead-lettered
//     = published. CONVEYOR_SOAK_N sets the number of jobs.
//   - TestFaultBadInput…: malformed stream entries, undecodable payloads,
//     unknown topics, bad URLs, configs and TLS combinations each get a
//     defined outcome; nothing panics and no job is lost.
//   - TestFaultSecurity…: TLS verification on by default, no password in
//     logs or errors, a Redis ACL user confined to its namespace, and two
//     namespaces on one Redis that never see each other's jobs.
//
// # The pieces
//
// A TCP proxy (proxy_test.go) cuts and restores the network and keeps a
// stable address across Redis restarts. The test binary doubles as a worker
// program (worker_test.go): TestMain runs it when CONVEYOR_RELIABILITY_WORKER
// is set, so fault tests can SIGKILL and SIGTERM real processes. The
// accounting (ledger_test.go) reads the broker's topic state and dead
// letters and compares them with what the handlers reported.
//
// Timings are short (leases of about a second) so the suite runs in a few
// minutes on two cores; tests wait on conditions with deadlines and never
// assert how long something took.
package reliability
