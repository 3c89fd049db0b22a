package bench

import (
	"context"
	"testing"

	"github.com/conveyor-jobs/conveyor/broker/redis/redistest"
)

// TestRunFairness runs the fairness scenario at a small size: both rows
// account for every job of the backlog and every job of the trickle, and
// give the trickle's percentiles.
func TestRunFairness(t *testing.T) {
	srv := redistest.Start(t)
	rep, err := Run(context.Background(), Config{N: tinyN, Runs: 1, RedisURL: srv.URL(), Scenarios: []string{ScenarioFairness}, Concurrency: 16})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{ScenarioFairness + "-1", ScenarioFairness + "-4"} {
		row := rep.Row(name)
		if row == nil || len(row.Runs) != 1 {
			t.Fatalf("no row %s in %+v", name, rep.Scenarios)
		}
		run := row.Runs[0]
		if run.Jobs != tinyN || run.Processed < tinyN+FairnessTrickleRate || row.P50Ms == nil || *row.P50Ms <= 0 || *row.P99Ms < *row.P50Ms || row.RatioToFloor != nil {
			t.Errorf("%s: %+v (processed %d)", name, row, run.Processed)
		}
		t.Logf("%s: drain %.0f jobs/s; trickle wait p50 %.2f ms, p99 %.2f ms, max %.2f ms", name, row.JobsPerSec, *row.P50Ms, *row.P99Ms, *row.MaxMs)
	}
}
