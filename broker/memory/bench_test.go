package memory_test

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/memory"
)

var benchPayload = []byte(`{"prompt":"summarise the ticket","n":1}`)

// BenchmarkPublish measures one Publish per op.
func BenchmarkPublish(b *testing.B) {
	br := memory.New(&memory.Options{FetchWait: -1})
	defer br.Close()
	ctx := context.Background()
	m := broker.Message{Topic: "bench", Payload: benchPayload}
	b.ReportAllocs()
	cpu0 := cpuTime()
	defer func() { reportCPU(b, cpu0) }()
	for i := 0; b.Loop(); i++ {
		if _, err := br.Publish(ctx, m); err != nil {
			b.Fatal(err)
		}
		if i%4096 == 4095 { // keep the queue from growing without bound
			drain(b, br)
		}
	}
}

// BenchmarkPublishBatch measures PublishBatch of 100 messages; ns/op and
// allocs/op are per job.
func BenchmarkPublishBatch(b *testing.B) {
	const batch = 100
	br := memory.New(&memory.Options{FetchWait: -1})
	defer br.Close()
	ctx := context.Background()
	ms := make([]broker.Message, batch)
	for i := range ms {
		ms[i] = broker.Message{Topic: "bench", Payload: benchPayload}
	}
	b.ReportAllocs()
	cpu0 := cpuTime()
	defer func() { reportCPU(b, cpu0) }()
	for i := 0; b.Loop(); i++ {
		if i%batch == 0 {
			if _, err := br.PublishBatch(ctx, ms); err != nil {
				b.Fatal(err)
			}
		}
		if i%4096 == 4095 {
			drain(b, br)
		}
	}
}

// BenchmarkFetchAck measures the consumer side per job: Fetch of 64, then Ack
// of the 64. The b.N jobs are published before the timer starts.
func BenchmarkFetchAck(b *testing.B) {
	const batch = 64
	br := memory.New(&memory.Options{FetchWait: -1})
	defer br.Close()
	ctx := context.Background()
	ms := make([]broker.Message, batch)
	for i := range ms {
		ms[i] = broker.Message{Topic: "bench", Payload: benchPayload}
	}
	for left := b.N; left > 0; left -= batch {
		if _, err := br.PublishBatch(ctx, ms[:min(left, batch)]); err != nil {
			b.Fatal(err)
		}
	}
	topics := []string{"bench"}
	runtime.GC()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for left := b.N; left > 0; left -= batch {
		ds, err := br.Fetch(ctx, topics, batch)
		if err != nil || len(ds) != min(left, batch) {
			b.Fatal(len(ds), err)
		}
		if err := br.Ack(ctx, ds...); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportCPU(b, cpu0)
}

// BenchmarkCycle measures a whole job per op: PublishBatch, Fetch and Ack in
// batches of 64.
func BenchmarkCycle(b *testing.B) {
	const batch = 64
	br := memory.New(&memory.Options{FetchWait: -1})
	defer br.Close()
	ctx := context.Background()
	ms := make([]broker.Message, batch)
	for i := range ms {
		ms[i] = broker.Message{Topic: "bench", Payload: benchPayload}
	}
	topics := []string{"bench"}
	b.ReportAllocs()
	cpu0 := cpuTime()
	defer func() { reportCPU(b, cpu0) }()
	n := 0
	for b.Loop() {
		if n == 0 {
			if _, err := br.PublishBatch(ctx, ms); err != nil {
				b.Fatal(err)
			}
			ds, err := br.Fetch(ctx, topics, batch)
			if err != nil || len(ds) != batch {
				b.Fatal(len(ds), err)
			}
			if err := br.Ack(ctx, ds...); err != nil {
				b.Fatal(err)
			}
		}
		n = (n + 1) % batch
	}
}

// BenchmarkConcurrent runs one producer publishing batches and two consumers
// fetching and acking at once, and reports jobs/s.
func BenchmarkConcurrent(b *testing.B) {
	const batch = 64
	br := memory.New(&memory.Options{FetchWait: 10 * time.Millisecond})
	defer br.Close()
	ctx := context.Background()
	ms := make([]broker.Message, batch)
	for i := range ms {
		ms[i] = broker.Message{Topic: "bench", Payload: benchPayload}
	}
	total := int64(b.N)
	var done atomic.Int64
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	start := time.Now()
	for c := range 2 {
		cons := br.Consumer("c" + string(rune('0'+c)))
		wg.Go(func() {
			for done.Load() < total {
				ds, err := cons.Fetch(ctx, []string{"bench"}, batch)
				if err != nil {
					b.Error(err)
					return
				}
				if err := cons.Ack(ctx, ds...); err != nil {
					b.Error(err)
					return
				}
				done.Add(int64(len(ds)))
			}
		})
	}
	for sent := int64(0); sent < total; sent += batch {
		if _, err := br.PublishBatch(ctx, ms[:min(batch, total-sent)]); err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
	b.ReportMetric(float64(total)/time.Since(start).Seconds(), "jobs/s")
	reportCPU(b, cpu0)
}

func drain(b *testing.B, br *memory.Broker) {
	b.StopTimer()
	defer b.StartTimer()
	ctx := context.Background()
	for {
		ds, err := br.Fetch(ctx, []string{"bench"}, 1024)
		if err != nil {
			b.Fatal(err)
		}
		if len(ds) == 0 {
			return
		}
		if err := br.Ack(ctx, ds...); err != nil {
			b.Fatal(err)
		}
	}
}

// cpuTime is the process's user + system CPU time: on a shared machine it
// moves less with other load than wall time does.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports CPU nanoseconds per op since cpu0.
func reportCPU(b *testing.B, cpu0 time.Duration) {
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// BenchmarkQueuedBytes reports the heap bytes that each queued job takes:
// it publishes queuedJobs() jobs of 32-byte payloads in batches of 100 to a
// fresh broker, and divides the growth of runtime.MemStats.HeapAlloc
// (after a collection, before and after publishing) by their number. One
// op fills one broker. Set CONVEYOR_QUEUED_JOBS to change the count
// (default 100,000), e.g. to 1000000 for the figure in BENCHMARKS.md:
//
//	CONVEYOR_QUEUED_JOBS=1000000 go test -run '^$' -bench QueuedBytes -benchtime 3x ./broker/memory/
func BenchmarkQueuedBytes(b *testing.B) {
	n := queuedJobs(b)
	ctx := context.Background()
	ms := make([]broker.Message, 100)
	for i := range ms {
		ms[i] = broker.Message{Topic: "bench", Payload: []byte("0123456789abcdef0123456789abcdef")}
	}
	var total float64
	for b.Loop() {
		runtime.GC()
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		br := memory.New(&memory.Options{FetchWait: -1})
		for left := n; left > 0; left -= len(ms) {
			if _, err := br.PublishBatch(ctx, ms[:min(left, len(ms))]); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&m1)
		runtime.KeepAlive(br)
		total += float64(int64(m1.HeapAlloc)-int64(m0.HeapAlloc)) / float64(n)
		br.Close()
	}
	b.ReportMetric(total/float64(b.N), "B/queued-job")
}

// queuedJobs returns CONVEYOR_QUEUED_JOBS, or 100,000.
func queuedJobs(b *testing.B) int {
	s := os.Getenv("CONVEYOR_QUEUED_JOBS")
	if s == "" {
		return 100_000
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		b.Fatalf("CONVEYOR_QUEUED_JOBS=%q: want a positive number", s)
	}
	return n
}
