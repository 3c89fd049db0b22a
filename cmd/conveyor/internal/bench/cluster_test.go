package bench

import (
	"bytes"
	"context"
	"math"
	"strings"
	"testing"
)

// TestRunClusterScenario runs the cluster scenario on the throwaway
// Cluster it starts itself: with 12 partitions every one of the 3 masters
// takes a third of the topic's commands; with 1, one master takes them
// all.
func TestRunClusterScenario(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	if _, err := redisServerPath(); err != nil {
		t.Skip("needs redis-server on PATH")
	}
	var progress bytes.Buffer
	rep, err := Run(context.Background(), Config{N: 3000, Runs: 1, Scenarios: []string{ScenarioCluster}, Progress: &progress, Concurrency: 16})
	if err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	one, twelve := rep.Row(ScenarioCluster+"-1"), rep.Row(ScenarioCluster+"-12")
	if one == nil || twelve == nil {
		t.Fatalf("rows %+v", rep.Scenarios)
	}
	for _, row := range []*Row{one, twelve} {
		if len(row.Masters) != 3 || row.JobsPerSec <= 0 || row.ProjectedJobsPerSec <= 0 || row.Runs[0].Processed < 3000 || row.RatioToFloor != nil {
			t.Errorf("%s: %+v", row.Name, row)
		}
		t.Logf("%s: %.0f jobs/s, projected %.0f jobs/s with a core per master", row.Name, row.JobsPerSec, row.ProjectedJobsPerSec)
		for _, m := range row.Masters {
			t.Logf("  %s: %.1f %% of %d commands, %.1f µs CPU per job", m.Addr, 100*m.CommandShare, m.Commands, m.CPUUsPerJob)
		}
	}
	var top float64
	for _, m := range one.Masters {
		top = math.Max(top, m.CommandShare)
	}
	if top < 0.95 {
		t.Errorf("1 partition: the busiest master ran %.1f %% of the commands, want nearly all", 100*top)
	}
	for _, m := range twelve.Masters {
		if math.Abs(m.CommandShare-1.0/3) > 0.15/3 {
			t.Errorf("12 partitions: master %s ran %.1f %% of the commands, want 33.3 %% ± 15 %% of it", m.Addr, 100*m.CommandShare)
		}
	}
	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "projected with one core per master") {
		t.Errorf("table has no per-master lines:\n%s", table.String())
	}
}
