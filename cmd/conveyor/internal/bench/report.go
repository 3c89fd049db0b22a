package bench

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Row names: one or more per scenario.
const (
	RowFloor             = "floor"
	RowFloorPublish      = "floor-publish"
	RowFloorWorkers      = "floor-workers"
	RowFloorLatency      = "floor-latency"
	RowPublishSingle     = "publish-single"
	RowPublishConcurrent = "publish-concurrent"
	RowPublishBatch      = "publish-batch"
	RowProcess           = "process"
	RowProcessStack      = "process-stack"
	RowLatency           = "latency"
	RowLatencyAck        = "latency-ack"
	RowMemory            = "memory"
	RowDelayed           = "delayed"
	RowTopics1           = "topics-1"
	RowTopics10          = "topics-10"
	RowTopics200         = "topics-200"
	RowTopicsHot         = "topics-hot"
	RowPriorities1       = "priorities-1"
	RowPriorities3Turn   = "priorities-3-turn"
	RowPriorities3       = "priorities-3"
)

// Report is the result of [Run]; its JSON form is what `conveyor bench
// --json` prints.
type Report struct {
	// Scenarios holds one row per measured quantity, in run order.
	Scenarios []Row `json:"scenarios"`
	// N is the number of jobs per scenario.
	N int `json:"n"`
	// Runs is how many times each scenario ran.
	Runs        int `json:"runs"`
	Concurrency int `json:"concurrency"`
	PayloadSize int `json:"payload_size"`
	// Rate is the latency scenario's publish rate, jobs per second.
	Rate int `json:"rate"`
	// RedisVersion is the server's redis_version ("" when no scenario used
	// Redis).
	RedisVersion string `json:"redis_version"`
	// RedisURL says which Redis was measured, without its password; empty
	// for a throwaway server started by Run.
	RedisURL string `json:"redis_url,omitempty"`
	// Go is the Go version the benchmark was built with.
	Go string `json:"go"`
	// CPUs is the number of logical CPUs; GOMAXPROCS the Go scheduler's.
	CPUs       int `json:"cpus"`
	GOMAXPROCS int `json:"gomaxprocs"`
	// Started is when the run began (UTC).
	Started time.Time `json:"started"`
	// LoadAvg is the machine's 1-minute load average at the start and at
	// the end of the run (from /proc/loadavg; 0 when unknown). Above the
	// CPU count, other processes competed for the CPUs.
	LoadAvg [2]float64 `json:"load_avg"`
}

// Row is one measured quantity: its median over runs and each run.
type Row struct {
	// Name is one of the Row* constants.
	Name string `json:"name"`
	// Scenario is the scenario the row belongs to.
	Scenario string `json:"scenario"`
	// What says what the row measures, in a few words.
	What string `json:"what"`
	// JobsPerSec is the median throughput.
	JobsPerSec float64 `json:"jobs_per_sec"`
	// RatioToFloor is JobsPerSec over the baseline row's median (Baseline):
	// floor-publish for publishing rows, none for the latency and delayed
	// rows (their rate is the publisher's) and the topics rows (their
	// handler sleeps), priorities-1 for the three-topic priorities rows,
	// floor for the others.
	// It is null when there is no
	// baseline or the floor scenario did not run.
	RatioToFloor *float64 `json:"ratio_to_floor"`
	// Baseline names the row RatioToFloor divides by ("" for none).
	Baseline string `json:"baseline"`
	// CPURatioToFloor is the baseline row's CPU time per job (this process
	// plus Redis) over this row's: the throughput ratio to expect when CPU
	// is the only limit. On a busy shared machine, where jobs/s depend on
	// what else runs, it is the steadier comparison. Null when either side
	// has no CPU figure.
	CPURatioToFloor *float64 `json:"cpu_ratio_to_floor"`
	// Latency percentiles in milliseconds (medians over runs): of publish
	// to handler start or ack (latency rows), of lateness past the due time
	// (delayed), of the topics' completion times (topics rows; max is the
	// slowest topic's); null for throughput rows.
	P50Ms *float64 `json:"p50_ms"`
	P90Ms *float64 `json:"p90_ms"`
	P99Ms *float64 `json:"p99_ms"`
	MaxMs *float64 `json:"max_ms"`
	// AllocsPerJob is the median heap allocations (runtime.MemStats.Mallocs
	// delta) per job of the whole benchmark process during the timed phase.
	AllocsPerJob float64 `json:"allocs_per_job"`
	// RSSMB is the median peak resident set size of the process during the
	// timed phase, in MiB.
	RSSMB float64 `json:"rss_mb"`
	// RoundTripsPerJob and CommandsPerJob are medians of the runs' figures.
	RoundTripsPerJob float64 `json:"round_trips_per_job"`
	CommandsPerJob   float64 `json:"commands_per_job"`
	// CPUUsPerJob and RedisCPUUsPerJob are medians of the runs' figures.
	CPUUsPerJob      float64 `json:"cpu_us_per_job"`
	RedisCPUUsPerJob float64 `json:"redis_cpu_us_per_job"`
	// Masters and ProjectedJobsPerSec are those of the run with the median
	// jobs/s (cluster rows only).
	Masters             []MasterStat `json:"masters,omitempty"`
	ProjectedJobsPerSec float64      `json:"projected_jobs_per_sec,omitempty"`
	// Runs holds every run's figures.
	Runs []RunResult `json:"runs"`
}

// RunResult is one run of one row.
type RunResult struct {
	// Jobs is the number of jobs the run timed.
	Jobs int `json:"jobs"`
	// Seconds is the timed phase's wall time.
	Seconds    float64  `json:"seconds"`
	JobsPerSec float64  `json:"jobs_per_sec"`
	P50Ms      *float64 `json:"p50_ms"`
	P90Ms      *float64 `json:"p90_ms"`
	P99Ms      *float64 `json:"p99_ms"`
	MaxMs      *float64 `json:"max_ms"`
	// AllocsPerJob and RSSMB: see Row.
	AllocsPerJob float64 `json:"allocs_per_job"`
	RSSMB        float64 `json:"rss_mb"`
	// RoundTripsPerJob and CommandsPerJob count the Redis round trips (a
	// command, or a pipeline) and commands this process sent during the
	// timed phase, per job; zero on the memory broker.
	RoundTripsPerJob float64 `json:"round_trips_per_job"`
	CommandsPerJob   float64 `json:"commands_per_job"`
	// CPUUsPerJob is this process's CPU time (user + system) per job, in
	// microseconds; RedisCPUUsPerJob the Redis server's (INFO cpu), zero on
	// the memory broker. Unlike jobs/s they hardly depend on what else the
	// machine runs.
	CPUUsPerJob      float64 `json:"cpu_us_per_job"`
	RedisCPUUsPerJob float64 `json:"redis_cpu_us_per_job"`
	// RSSSamples are the resident set sizes read at the points of
	// Config.RSSSamples (processing scenarios only).
	RSSSamples []RSSSample `json:"rss_samples,omitempty"`
	// Masters describes each Redis Cluster master (cluster rows only), and
	// ProjectedJobsPerSec the jobs/s at which the busiest of them would
	// use one core (1 s over its CPU time per job).
	Masters             []MasterStat `json:"masters,omitempty"`
	ProjectedJobsPerSec float64      `json:"projected_jobs_per_sec,omitempty"`
	// Processed counts handler calls (processing scenarios only); above
	// Jobs means some jobs were delivered twice.
	Processed int64 `json:"processed,omitempty"`
}

// row returns the row named name, or nil.
func (r *Report) row(name string) *Row {
	for i := range r.Scenarios {
		if r.Scenarios[i].Name == name {
			return &r.Scenarios[i]
		}
	}
	return nil
}

// Row returns the row named name, or nil when it was not measured.
func (r *Report) Row(name string) *Row { return r.row(name) }

// add appends run to the row named name, creating the row on first use.
func (r *Report) add(scenario, name, what string, run RunResult) {
	row := r.row(name)
	if row == nil {
		r.Scenarios = append(r.Scenarios, Row{Name: name, Scenario: scenario, What: what, Baseline: baselineOf(name)})
		row = &r.Scenarios[len(r.Scenarios)-1]
	}
	row.Runs = append(row.Runs, run)
}

// baselineOf names the floor row a row is compared to; "" for the latency
// and delayed rows, whose rate is set by the publisher, for the topics
// rows, whose handler sleeps, so they have nothing to compare, and for the
// cluster rows, measured on another Redis than the floor; the
// three-topic priorities rows are compared to priorities-1.
func baselineOf(name string) string {
	if _, ok := latencyRate(name); ok {
		return ""
	}
	switch name {
	case RowFloorPublish, RowPublishSingle, RowPublishConcurrent, RowPublishBatch:
		return RowFloorPublish
	case RowFloorLatency, RowLatency, RowLatencyAck, RowDelayed, RowTopics1, RowTopics10, RowTopics200, RowTopicsHot:
		return ""
	case RowPriorities3Turn, RowPriorities3:
		return RowPriorities1
	}
	if strings.HasPrefix(name, ScenarioCluster+"-") || strings.HasPrefix(name, ScenarioFairness+"-") {
		return "" // no floor on a Cluster; fairness is a wait
	}
	return RowFloor
}

// summarize fills every row's medians and ratios from its runs.
func (r *Report) summarize() {
	for i := range r.Scenarios {
		row := &r.Scenarios[i]
		pick := func(f func(RunResult) float64) float64 {
			vs := make([]float64, len(row.Runs))
			for j, run := range row.Runs {
				vs[j] = f(run)
			}
			return median(vs)
		}
		pickOpt := func(f func(RunResult) *float64) *float64 {
			var vs []float64
			for _, run := range row.Runs {
				if p := f(run); p != nil {
					vs = append(vs, *p)
				}
			}
			if len(vs) == 0 {
				return nil
			}
			m := median(vs)
			return &m
		}
		row.JobsPerSec = pick(func(x RunResult) float64 { return x.JobsPerSec })
		row.AllocsPerJob = pick(func(x RunResult) float64 { return x.AllocsPerJob })
		row.RSSMB = pick(func(x RunResult) float64 { return x.RSSMB })
		row.RoundTripsPerJob = pick(func(x RunResult) float64 { return x.RoundTripsPerJob })
		row.CommandsPerJob = pick(func(x RunResult) float64 { return x.CommandsPerJob })
		row.CPUUsPerJob = pick(func(x RunResult) float64 { return x.CPUUsPerJob })
		row.RedisCPUUsPerJob = pick(func(x RunResult) float64 { return x.RedisCPUUsPerJob })
		row.P50Ms = pickOpt(func(x RunResult) *float64 { return x.P50Ms })
		row.P90Ms = pickOpt(func(x RunResult) *float64 { return x.P90Ms })
		row.P99Ms = pickOpt(func(x RunResult) *float64 { return x.P99Ms })
		row.MaxMs = pickOpt(func(x RunResult) *float64 { return x.MaxMs })
		if len(row.Runs) > 0 && row.Runs[0].Masters != nil {
			runs := slices.Clone(row.Runs)
			slices.SortFunc(runs, func(a, b RunResult) int { return cmp.Compare(a.JobsPerSec, b.JobsPerSec) })
			mid := runs[(len(runs)-1)/2]
			row.Masters, row.ProjectedJobsPerSec = mid.Masters, mid.ProjectedJobsPerSec
		}
	}
	for i := range r.Scenarios {
		row := &r.Scenarios[i]
		row.RatioToFloor, row.CPURatioToFloor = nil, nil
		base := r.row(row.Baseline)
		if base == nil {
			continue
		}
		if base.JobsPerSec > 0 {
			ratio := row.JobsPerSec / base.JobsPerSec
			row.RatioToFloor = &ratio
		}
		if cpu, baseCPU := row.CPUUsPerJob+row.RedisCPUUsPerJob, base.CPUUsPerJob+base.RedisCPUUsPerJob; cpu > 0 && baseCPU > 0 {
			ratio := baseCPU / cpu
			row.CPURatioToFloor = &ratio
		}
	}
}

// median returns the median of vs (the mean of the middle two for an even
// count), or 0 for none.
func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// WriteJSON writes r as one indented JSON object.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes r as a human-readable table.
func (r *Report) WriteTable(w io.Writer) error {
	redis := r.RedisVersion
	if redis == "" {
		redis = "-"
	}
	fmt.Fprintf(w, "conveyor bench: n=%d runs=%d (median) concurrency=%d payload=%dB rate=%d/s\n",
		r.N, r.Runs, r.Concurrency, r.PayloadSize, r.Rate)
	fmt.Fprintf(w, "redis %s, %s, %d CPUs (GOMAXPROCS %d), load average %.1f at start, %.1f at end\n\n",
		redis, r.Go, r.CPUs, r.GOMAXPROCS, r.LoadAvg[0], r.LoadAvg[1])
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tjobs/s\tvs floor\tp50 ms\tp90 ms\tp99 ms\tmax ms\tallocs/job\tRSS MB\tRTT/job\tcmds/job\tCPU µs/job\tRedis µs/job\tCPU ratio\t")
	for _, row := range r.Scenarios {
		ratio := ratioText(row.RatioToFloor, row.Baseline)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.1f\t%.1f\t%.3f\t%.2f\t%.1f\t%.1f\t%s\t\n", row.Name, thousands(row.JobsPerSec), ratio,
			ms(row.P50Ms), ms(row.P90Ms), ms(row.P99Ms), ms(row.MaxMs), row.AllocsPerJob, row.RSSMB, row.RoundTripsPerJob, row.CommandsPerJob, row.CPUUsPerJob, row.RedisCPUUsPerJob, ratioText(row.CPURatioToFloor, row.Baseline))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	writeRSSSamples(w, r)
	var notes []string
	for _, row := range r.Scenarios {
		notes = append(notes, fmt.Sprintf("  %-19s %s", row.Name, row.What))
	}
	for _, row := range r.Scenarios {
		if len(row.Masters) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s, per master:\n", row.Name)
		for _, m := range row.Masters {
			fmt.Fprintf(w, "  %-21s %5.1f %% of commands, %6.1f µs Redis CPU per job\n", m.Addr, 100*m.CommandShare, m.CPUUsPerJob)
		}
		fmt.Fprintf(w, "  projected with one core per master: %s jobs/s (the busiest master's CPU per job)\n", thousands(row.ProjectedJobsPerSec))
	}
	star := ""
	if r.row(RowPriorities3) != nil || r.row(RowPriorities3Turn) != nil {
		star = " \"*\" marks the three-topic priorities rows, compared to priorities-1."
	}
	_, err := fmt.Fprintf(w, "\nvs floor: ratio to the floor row's jobs/s; \"p\" marks publishing rows, compared to floor-publish.%s\nRTT/job, cmds/job: Redis round trips and commands sent by this process per job.\nCPU µs/job: this process's CPU time per job; Redis µs/job: the Redis server's (INFO cpu);\nCPU ratio: the floor's CPU per job (both) over the row's, the expected ratio when CPU is the only limit.\n%s\n",
		star, strings.Join(notes, "\n"))
	return err
}

// ratioText formats a ratio, marked "p" when its baseline is
// floor-publish, "*" when it is priorities-1.
func ratioText(r *float64, baseline string) string {
	if r == nil {
		return "-"
	}
	s := strconv.FormatFloat(*r, 'f', 2, 64) + "x"
	switch baseline {
	case RowFloorPublish:
		s += "p"
	case RowPriorities1:
		s += "*"
	}
	return s
}

func ms(p *float64) string {
	if p == nil {
		return "-"
	}
	return strconv.FormatFloat(*p, 'f', 3, 64)
}

// thousands formats v rounded to an integer with thin separators: 1,234,567.
func thousands(v float64) string {
	s := strconv.FormatInt(int64(v+0.5), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
