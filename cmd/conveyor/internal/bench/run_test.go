package bench

import (
	"bytes"
	"context"
	"strings"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/broker/redis/redistest"
)

// tinyN is the size the tests (and CI) run every scenario at: enough to
// exercise every code path, far too small for the numbers to mean anything.
const tinyN = 2000

func TestRunAllScenarios(t *testing.T) {
	srv := redistest.Start(t)
	var progress bytes.Buffer
	rep, err := Run(context.Background(), Config{
		N: tinyN, Runs: 1, RedisURL: srv.URL(), Progress: &progress,
		Rate: 5000, LatencyJobs: 500, Concurrency: 16,
		LatencyRates: []int{6000}, RSSSamples: []int{50, 100},
	})
	if err != nil {
		t.Fatal(err)
	}
	wantRows := []struct {
		name, scenario, baseline string
		jobs                     int
		processing, latency      bool
	}{
		{RowFloorPublish, ScenarioFloor, RowFloorPublish, tinyN, false, false},
		{RowFloor, ScenarioFloor, RowFloor, tinyN, true, false},
		{RowFloorWorkers, ScenarioFloor, RowFloor, tinyN, true, false},
		{RowPublishSingle, ScenarioPublish, RowFloorPublish, tinyN, false, true},
		{RowPublishConcurrent, ScenarioPublish, RowFloorPublish, tinyN, false, false},
		{RowPublishBatch, ScenarioPublish, RowFloorPublish, tinyN, false, false},
		{RowProcess, ScenarioProcess, RowFloor, tinyN, true, false},
		{RowProcessStack, ScenarioProcessStack, RowFloor, tinyN, true, false},
		{RowFloorLatency, ScenarioLatency, "", 500, false, true},
		{RowLatency, ScenarioLatency, "", 500, false, true},
		{RowLatencyAck, ScenarioLatency, "", 500, false, true},
		{"floor-latency-6000", ScenarioLatency, "", 500, false, true},
		{"latency-6000", ScenarioLatency, "", 500, false, true},
		{"latency-ack-6000", ScenarioLatency, "", 500, false, true},
		{RowMemory, ScenarioMemory, RowFloor, tinyN, true, false},
		{RowDelayed, ScenarioDelayed, "", 500, false, true},
		{RowTopics1, ScenarioTopics, "", tinyN, true, true},
		{RowTopics10, ScenarioTopics, "", tinyN, true, true},
		{RowTopics200, ScenarioTopics, "", tinyN, true, true},
		{RowTopicsHot, ScenarioTopics, "", tinyN, true, true},
		{RowPriorities1, ScenarioPriorities, RowFloor, tinyN, true, false},
		{RowPriorities3Turn, ScenarioPriorities, RowPriorities1, tinyN, true, false},
		{RowPriorities3, ScenarioPriorities, RowPriorities1, tinyN, true, false},
	}
	if len(rep.Scenarios) != len(wantRows) {
		t.Fatalf("%d rows, want %d: %+v", len(rep.Scenarios), len(wantRows), rep.Scenarios)
	}
	for i, want := range wantRows {
		row := rep.Scenarios[i]
		if row.Name != want.name || row.Scenario != want.scenario || row.Baseline != want.baseline {
			t.Errorf("row %d: %s/%s baseline %s, want %s/%s baseline %s", i, row.Scenario, row.Name, row.Baseline, want.scenario, want.name, want.baseline)
			continue
		}
		if len(row.Runs) != 1 {
			t.Errorf("%s: %d runs, want 1", row.Name, len(row.Runs))
			continue
		}
		run := row.Runs[0]
		if run.Jobs != want.jobs {
			t.Errorf("%s: %d jobs, want %d", row.Name, run.Jobs, want.jobs)
		}
		if want.processing && run.Processed < int64(want.jobs) {
			t.Errorf("%s: handler ran %d times for %d jobs", row.Name, run.Processed, want.jobs)
		}
		if row.JobsPerSec <= 0 || row.JobsPerSec != run.JobsPerSec || run.Seconds <= 0 {
			t.Errorf("%s: jobs/s %v (run %v, %vs)", row.Name, row.JobsPerSec, run.JobsPerSec, run.Seconds)
		}
		if hasRatio := row.RatioToFloor != nil && *row.RatioToFloor > 0; hasRatio != (want.baseline != "") {
			t.Errorf("%s: ratio to floor %v with baseline %q", row.Name, row.RatioToFloor, want.baseline)
		}
		if row.RSSMB <= 0 || row.AllocsPerJob < 0 {
			t.Errorf("%s: rss %v MB, allocs/job %v", row.Name, row.RSSMB, row.AllocsPerJob)
		}
		switch samples := run.RSSSamples; row.Name {
		case RowProcess, RowProcessStack, RowMemory:
			if len(samples) != 2 || samples[0].Percent != 50 || samples[1].Percent != 100 || samples[1].Jobs < tinyN || samples[1].HeapMB <= 0 {
				t.Errorf("%s: RSS samples %+v, want at 50%% and 100%%", row.Name, samples)
			}
		default:
			if len(samples) != 0 {
				t.Errorf("%s: RSS samples %+v, want none", row.Name, samples)
			}
		}
		if got := row.P50Ms != nil; got != want.latency {
			t.Errorf("%s: has percentiles %v, want %v", row.Name, got, want.latency)
		}
		if want.latency && row.P50Ms != nil {
			if !(0 < *row.P50Ms && *row.P50Ms <= *row.P90Ms && *row.P90Ms <= *row.P99Ms && *row.P99Ms <= *row.MaxMs) {
				t.Errorf("%s: percentiles not ordered: %v %v %v %v", row.Name, *row.P50Ms, *row.P90Ms, *row.P99Ms, *row.MaxMs)
			}
		}
	}
	if r := rep.Row(RowFloor); r != nil && *r.RatioToFloor != 1 {
		t.Errorf("floor's ratio to itself is %v", *r.RatioToFloor)
	}
	if rep.RedisVersion == "" || rep.N != tinyN || rep.Runs != 1 || rep.CPUs <= 0 || rep.Go == "" {
		t.Errorf("report header: %+v", rep)
	}
	for _, s := range DefaultScenarios {
		if !strings.Contains(progress.String(), "run 1/1 "+s) {
			t.Errorf("no progress line for %s in:\n%s", s, progress.String())
		}
	}
	if srv.Path != redistest.PathURL { // a shared Redis may hold other runs' keys
		assertNoBenchKeys(t, srv.Client(t))
	}
}

// assertNoBenchKeys fails when a scenario left keys behind.
func assertNoBenchKeys(t *testing.T, rdb *goredis.Client) {
	t.Helper()
	keys, err := rdb.Keys(context.Background(), "bench-*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) > 0 {
		t.Errorf("scenarios left %d keys behind, e.g. %s", len(keys), keys[0])
	}
}

func TestRunMedianOfRuns(t *testing.T) {
	srv := redistest.Start(t)
	rep, err := Run(context.Background(), Config{N: 500, Runs: 3, RedisURL: srv.URL(), Scenarios: []string{ScenarioFloor, ScenarioProcess}})
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range rep.Scenarios {
		if len(row.Runs) != 3 {
			t.Fatalf("%s: %d runs, want 3", row.Name, len(row.Runs))
		}
		vs := []float64{row.Runs[0].JobsPerSec, row.Runs[1].JobsPerSec, row.Runs[2].JobsPerSec}
		if want := median(vs); row.JobsPerSec != want {
			t.Errorf("%s: jobs/s %v, want the median of %v", row.Name, row.JobsPerSec, vs)
		}
	}
	floor, proc := rep.Row(RowFloor), rep.Row(RowProcess)
	if want := proc.JobsPerSec / floor.JobsPerSec; *proc.RatioToFloor != want {
		t.Errorf("process ratio %v, want %v", *proc.RatioToFloor, want)
	}
}

func TestRunMemoryNeedsNoRedis(t *testing.T) {
	rep, err := Run(context.Background(), Config{N: tinyN, Runs: 1, Scenarios: []string{ScenarioMemory}, RedisURL: "redis://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.RedisVersion != "" {
		t.Errorf("redis version %q without Redis", rep.RedisVersion)
	}
	row := rep.Row(RowMemory)
	if row == nil || row.Runs[0].Processed < tinyN || row.RatioToFloor != nil {
		t.Errorf("memory row %+v (no floor: the ratio must be null)", row)
	}
}

func TestRunStartsThrowawayRedis(t *testing.T) {
	if _, err := redisServerPath(); err != nil {
		t.Skip("redis-server is not on PATH")
	}
	var progress bytes.Buffer
	rep, err := Run(context.Background(), Config{N: 300, Runs: 1, Scenarios: []string{ScenarioFloor}, Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	if rep.RedisVersion == "" || rep.RedisURL != "" {
		t.Errorf("redis version %q, url %q", rep.RedisVersion, rep.RedisURL)
	}
	if !strings.Contains(progress.String(), "throwaway redis-server") {
		t.Errorf("progress does not say a throwaway server was started:\n%s", progress.String())
	}
}

func TestRunUnreachableRedis(t *testing.T) {
	_, err := Run(context.Background(), Config{N: 10, Runs: 1, Scenarios: []string{ScenarioFloor}, RedisURL: "redis://user:secret@127.0.0.1:1"})
	if err == nil {
		t.Fatal("no error for an unreachable Redis")
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("error leaks the password: %v", err)
	}
}

func TestRunCancelled(t *testing.T) {
	srv := redistest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, Config{N: 1000, Runs: 1, RedisURL: srv.URL(), Scenarios: []string{ScenarioProcess}}); err == nil {
		t.Fatal("a cancelled run returned no error")
	}
	if srv.Path != redistest.PathURL {
		assertNoBenchKeys(t, srv.Client(t))
	}
}
