package bench

import (
	"context"
	"testing"

	"github.com/conveyor-jobs/conveyor/broker/redis/redistest"
)

// BenchmarkEndToEnd processes b.N jobs end to end through the raw go-redis
// floor, the conveyor server on Redis (bare and with middleware.Default) and
// the server on the memory broker, so that
//
//	go test -run '^$' -bench EndToEnd -benchtime 100000x ./cmd/conveyor/internal/bench
//
// gives the same comparison as `conveyor bench`. ns/op is the timed phase
// per job (set-up such as enqueueing excluded); jobs/s and ratio are the
// same figures as the report's.
func BenchmarkEndToEnd(b *testing.B) {
	srv := redistest.Start(b)
	var floor float64
	for _, bc := range []struct {
		name string
		fn   func(context.Context, *env) error
		row  string
	}{
		{"floor", runFloor, RowFloor},
		{"process", runProcess, RowProcess},
		{"process-stack", runProcessStack, RowProcessStack},
		{"memory", runMemory, RowMemory},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e := testEnv(b, srv, Config{N: b.N, Runs: 1})
			if err := bc.fn(context.Background(), e); err != nil {
				b.Fatal(err)
			}
			e.report.summarize()
			row := e.report.Row(bc.row)
			if bc.row == RowFloor {
				floor = row.JobsPerSec
			}
			b.ReportMetric(row.Runs[0].Seconds*1e9/float64(b.N), "ns/op")
			b.ReportMetric(row.JobsPerSec, "jobs/s")
			b.ReportMetric(row.AllocsPerJob, "allocs/job")
			if floor > 0 {
				b.ReportMetric(row.JobsPerSec/floor, "x-floor")
			}
		})
	}
}

// testEnv returns an env for cfg on srv, its admin client closed at the end.
func testEnv(tb testing.TB, srv *redistest.Server, cfg Config) *env {
	tb.Helper()
	cfg, err := cfg.withDefaults()
	if err != nil {
		tb.Fatal(err)
	}
	e := newEnv(cfg)
	e.url = srv.URL()
	e.rdb = srv.Client(tb)
	return e
}
