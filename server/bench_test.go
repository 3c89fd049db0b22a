package server_test

import (
	"context"
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/memory"
	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/server"
)

// BenchmarkDispatch measures the dispatch path: b.N jobs published to the
// memory broker beforehand, then a server with a no-op handler (behind 0 or 5
// pass-through middlewares) runs until every job is acknowledged. It reports
// jobs/s; allocs/op is allocations per job (publishing excluded).
func BenchmarkDispatch(b *testing.B) {
	passThrough := func(next job.Handler) job.Handler {
		return job.HandlerFunc(func(ctx context.Context, j *job.Job) error {
			return next.ProcessJob(ctx, j)
		})
	}
	for _, n := range []int{0, 5} {
		b.Run(fmt.Sprintf("middlewares=%d", n), func(b *testing.B) {
			mws := make([]job.Middleware, n)
			for i := range mws {
				mws[i] = passThrough
			}
			h := job.Chain(mws...)(job.HandlerFunc(func(context.Context, *job.Job) error { return nil }))
			benchmarkServer(b, h)
		})
	}
}

func benchmarkServer(b *testing.B, h job.Handler) {
	br := memory.New(&memory.Options{FetchWait: time.Millisecond})
	defer br.Close()
	ctx := context.Background()
	const chunk = 4096
	msgs := make([]broker.Message, chunk)
	for i := range msgs {
		msgs[i] = broker.Message{Topic: "bench", Payload: []byte(`{"prompt":"p"}`)}
	}
	b.StopTimer()
	for left := b.N; left > 0; left -= chunk {
		if _, err := br.PublishBatch(ctx, msgs[:min(left, chunk)]); err != nil {
			b.Fatal(err)
		}
	}
	srv, err := server.New(br, h, &server.Options{Topics: []string{"bench"}, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	result := make(chan error, 1)
	runtime.GC() // finish the collection publishing started
	b.ReportAllocs()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	cpu0 := cpuTime()
	b.StartTimer()
	go func() { result <- srv.Run(runCtx) }()
	for srv.Stats().Acked < int64(b.N) {
		time.Sleep(50 * time.Microsecond)
	}
	b.StopTimer()
	cpu := cpuTime() - cpu0
	runtime.ReadMemStats(&m1)
	cancel()
	if err := <-result; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
	// allocs/op rounds down; this is the exact mean, broker included.
	b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/float64(b.N), "allocs/job")
	st := srv.Stats()
	b.ReportMetric(float64(st.Processed)/float64(st.Fetches), "jobs/fetch")
	// CPU time per job, user + system, of the whole process: on a shared
	// machine it moves less with other load than jobs/s does.
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/job")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
