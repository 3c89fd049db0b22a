package bench

import (
	"context"
	"strings"
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

// TestRunProcessPartitioned runs process on a topic of 4 partitions: the
// run starts only once the layout SetPartitions replaced is dropped (so
// that it measures a topic of 4 partitions, not the seconds after the
// change), and processes every job.
func TestRunProcessPartitioned(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	e := testEnv(t, srv, Config{N: tinyN, Runs: 1, Partitions: 4, Concurrency: 16})
	b, release, err := e.openRedis(ScenarioProcess, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if err := b.SetPartitions(ctx, benchTopic, 4); err != nil {
		t.Fatal(err)
	}
	key := b.Options().Namespace + ":partitions"
	if ok, err := srv.Client(t).HExists(ctx, key, "{retiring}"+benchTopic).Result(); err != nil || !ok {
		t.Fatalf("after SetPartitions, retiring layout registered = %v, %v; want true", ok, err)
	}
	if err := awaitRetired(ctx, b, benchTopic); err != nil {
		t.Fatal(err)
	}
	if ok, err := srv.Client(t).HExists(ctx, key, "{retiring}"+benchTopic).Result(); err != nil || ok {
		t.Fatalf("after awaitRetired, retiring layout registered = %v, %v; want false", ok, err)
	}

	rep, err := Run(ctx, Config{N: tinyN, Runs: 1, RedisURL: srv.URL(), Scenarios: []string{ScenarioProcess}, Partitions: 4, Concurrency: 16})
	if err != nil {
		t.Fatal(err)
	}
	row := rep.Row(RowProcess)
	if row == nil || len(row.Runs) != 1 || row.Runs[0].Processed < tinyN || !strings.Contains(row.What, "topic of 4 partitions") {
		t.Fatalf("process row %+v", row)
	}
}
