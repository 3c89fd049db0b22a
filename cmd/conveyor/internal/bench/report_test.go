package bench

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

// sampleReport is a report of two runs of a few rows, summarized.
func sampleReport() *Report {
	r := &Report{N: 100, Runs: 2, Go: "go1.26", CPUs: 2, RedisVersion: "7.0.15"}
	r.add(ScenarioFloor, RowFloorPublish, "xadd", RunResult{Jobs: 100, JobsPerSec: 200})
	r.add(ScenarioFloor, RowFloor, "xreadgroup", RunResult{Jobs: 100, JobsPerSec: 100, AllocsPerJob: 2, RSSMB: 10})
	r.add(ScenarioPublish, RowPublishBatch, "batch", RunResult{Jobs: 100, JobsPerSec: 150})
	r.add(ScenarioProcess, RowProcess, "process", RunResult{Jobs: 100, JobsPerSec: 40, AllocsPerJob: 20, RSSMB: 12})
	r.add(ScenarioLatency, RowLatency, "latency", RunResult{Jobs: 100, JobsPerSec: 10, P50Ms: ptr(1), P90Ms: ptr(2), P99Ms: ptr(3), MaxMs: ptr(9)})
	r.add(ScenarioFloor, RowFloorPublish, "xadd", RunResult{Jobs: 100, JobsPerSec: 400})
	r.add(ScenarioFloor, RowFloor, "xreadgroup", RunResult{Jobs: 100, JobsPerSec: 300, AllocsPerJob: 4, RSSMB: 14})
	r.add(ScenarioPublish, RowPublishBatch, "batch", RunResult{Jobs: 100, JobsPerSec: 150})
	r.add(ScenarioProcess, RowProcess, "process", RunResult{Jobs: 100, JobsPerSec: 60, AllocsPerJob: 22, RSSMB: 12})
	r.add(ScenarioLatency, RowLatency, "latency", RunResult{Jobs: 100, JobsPerSec: 10, P50Ms: ptr(3), P90Ms: ptr(4), P99Ms: ptr(5), MaxMs: ptr(11)})
	r.summarize()
	return r
}

func TestSummarize(t *testing.T) {
	r := sampleReport()
	for _, tc := range []struct {
		row               string
		jobsPerSec, ratio float64
		allocs, rss       float64
		p50, max          *float64
	}{
		{RowFloorPublish, 300, 1, 0, 0, nil, nil},
		{RowFloor, 200, 1, 3, 12, nil, nil},
		{RowPublishBatch, 150, 0.5, 0, 0, nil, nil}, // against floor-publish
		{RowProcess, 50, 0.25, 21, 12, nil, nil},
		{RowLatency, 10, -1, 0, 0, ptr(2), ptr(10)}, // no baseline: null ratio
	} {
		t.Run(tc.row, func(t *testing.T) {
			row := r.Row(tc.row)
			if row == nil {
				t.Fatal("missing")
			}
			if tc.ratio < 0 {
				if row.RatioToFloor != nil {
					t.Errorf("ratio %v, want null", *row.RatioToFloor)
				}
			} else if row.RatioToFloor == nil || *row.RatioToFloor != tc.ratio {
				t.Errorf("ratio %v, want %v", row.RatioToFloor, tc.ratio)
			}
			if row.JobsPerSec != tc.jobsPerSec {
				t.Errorf("jobs/s %v, want %v", row.JobsPerSec, tc.jobsPerSec)
			}
			if row.AllocsPerJob != tc.allocs || row.RSSMB != tc.rss {
				t.Errorf("allocs %v rss %v, want %v and %v", row.AllocsPerJob, row.RSSMB, tc.allocs, tc.rss)
			}
			if (row.P50Ms == nil) != (tc.p50 == nil) || tc.p50 != nil && (*row.P50Ms != *tc.p50 || *row.MaxMs != *tc.max) {
				t.Errorf("p50 %v max %v, want %v and %v", row.P50Ms, row.MaxMs, tc.p50, tc.max)
			}
		})
	}
}

func TestSummarizeWithoutFloor(t *testing.T) {
	r := &Report{}
	r.add(ScenarioMemory, RowMemory, "memory", RunResult{Jobs: 1, JobsPerSec: 5})
	r.summarize()
	if row := r.Row(RowMemory); row.RatioToFloor != nil || row.JobsPerSec != 5 {
		t.Errorf("row %+v: want jobs/s 5 and a null ratio", row)
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{7}, 7},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{5, 5, 1}, 5},
	} {
		in := slices.Clone(tc.in)
		if got := median(in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
		if !slices.Equal(in, tc.in) {
			t.Errorf("median modified its input: %v", in)
		}
	}
}

func TestPercentile(t *testing.T) {
	ms := func(vs ...int) []time.Duration {
		out := make([]time.Duration, len(vs))
		for i, v := range vs {
			out[i] = time.Duration(v) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	for _, tc := range []struct {
		name   string
		sorted []time.Duration
		q      float64
		want   time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"one", ms(4), 0.99, 4 * time.Millisecond},
		{"p50 of 1..100", ms(hundred...), 0.5, 50 * time.Millisecond},
		{"p90 of 1..100", ms(hundred...), 0.9, 90 * time.Millisecond},
		{"p99 of 1..100", ms(hundred...), 0.99, 99 * time.Millisecond},
		{"p100 of 1..100", ms(hundred...), 1, 100 * time.Millisecond},
		{"p50 of 1..4", ms(1, 2, 3, 4), 0.5, 2 * time.Millisecond},
		{"p99 of 1..4", ms(1, 2, 3, 4), 0.99, 4 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := percentile(tc.sorted, tc.q); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestJSONShape pins the field names `conveyor bench --json` promises.
func TestJSONShape(t *testing.T) {
	var buf bytes.Buffer
	if err := sampleReport().WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var top map[string]any
	if err := json.Unmarshal(buf.Bytes(), &top); err != nil {
		t.Fatalf("not one JSON object: %v", err)
	}
	for _, k := range []string{"scenarios", "n", "runs", "redis_version", "go", "cpus", "concurrency", "payload_size", "rate", "load_avg"} {
		if _, ok := top[k]; !ok {
			t.Errorf("top level has no %q", k)
		}
	}
	rows, _ := top["scenarios"].([]any)
	if len(rows) != 5 {
		t.Fatalf("%d scenario rows, want 5", len(rows))
	}
	for _, r := range rows {
		row := r.(map[string]any)
		for _, k := range []string{"name", "jobs_per_sec", "ratio_to_floor", "p50_ms", "p90_ms", "p99_ms", "max_ms", "allocs_per_job", "rss_mb", "cpu_ratio_to_floor", "runs"} {
			if _, ok := row[k]; !ok {
				t.Errorf("row %v has no %q", row["name"], k)
			}
		}
		runs, _ := row["runs"].([]any)
		if len(runs) != 2 {
			t.Errorf("row %v: %d runs, want 2", row["name"], len(runs))
		}
	}
	lat := rows[4].(map[string]any)
	if lat["name"] != RowLatency || lat["p99_ms"] != 4.0 || lat["max_ms"] != 10.0 {
		t.Errorf("latency row %v", lat)
	}
	if proc := rows[3].(map[string]any); proc["p50_ms"] != nil || proc["ratio_to_floor"] != 0.25 {
		t.Errorf("process row: p50 %v (want null), ratio %v (want 0.25)", proc["p50_ms"], proc["ratio_to_floor"])
	}
}

func TestWriteTable(t *testing.T) {
	var buf bytes.Buffer
	if err := sampleReport().WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"jobs/s", "vs floor", "p99 ms", "allocs/job", "RSS MB", "redis 7.0.15",
		RowFloor, RowProcess, "0.25x", "0.50xp", "4.000", "300", "n=100 runs=2"} {
		if !strings.Contains(out, want) {
			t.Errorf("table has no %q:\n%s", want, out)
		}
	}
}

func TestThousands(t *testing.T) {
	for _, tc := range []struct {
		in   float64
		want string
	}{{0, "0"}, {999.6, "1,000"}, {1234567, "1,234,567"}, {100000, "100,000"}} {
		if got := thousands(tc.in); got != tc.want {
			t.Errorf("thousands(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestCPURatio(t *testing.T) {
	r := &Report{}
	r.add(ScenarioFloor, RowFloor, "floor", RunResult{Jobs: 1, JobsPerSec: 100, CPUUsPerJob: 3, RedisCPUUsPerJob: 7})
	r.add(ScenarioProcess, RowProcess, "process", RunResult{Jobs: 1, JobsPerSec: 80, CPUUsPerJob: 12, RedisCPUUsPerJob: 8})
	r.add(ScenarioMemory, RowMemory, "memory", RunResult{Jobs: 1, JobsPerSec: 500})
	r.summarize()
	if p := r.Row(RowProcess); p.CPURatioToFloor == nil || *p.CPURatioToFloor != 0.5 {
		t.Errorf("process CPU ratio %v, want 0.5 (10 µs over 20 µs)", p.CPURatioToFloor)
	}
	if m := r.Row(RowMemory); m.CPURatioToFloor != nil {
		t.Errorf("memory CPU ratio %v without CPU figures, want null", *m.CPURatioToFloor)
	}
}
