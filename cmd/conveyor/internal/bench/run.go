package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/internal/redact"
)

// scenarioFuncs maps each scenario to its implementation.
var scenarioFuncs = map[string]func(context.Context, *env) error{
	ScenarioFloor:        runFloor,
	ScenarioPublish:      runPublish,
	ScenarioProcess:      runProcess,
	ScenarioProcessStack: runProcessStack,
	ScenarioLatency:      runLatency,
	ScenarioMemory:       runMemory,
	ScenarioDelayed:      runDelayed,
	ScenarioTopics:       runTopics,
	ScenarioPriorities:   runPriorities,
	ScenarioCluster:      runCluster,
	ScenarioFairness:     runFairness,
}

// newEnv returns the environment of a run of cfg (defaults applied), with an
// empty report.
func newEnv(cfg Config) *env {
	return &env{
		cfg:   cfg,
		quiet: slog.New(slog.DiscardHandler),
		report: &Report{
			N: cfg.N, Runs: cfg.Runs, Concurrency: cfg.Concurrency, PayloadSize: cfg.PayloadSize, Rate: cfg.Rate,
			Go: runtime.Version(), CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0),
			Started: time.Now().UTC().Truncate(time.Second),
			LoadAvg: [2]float64{loadAvg(), 0},
		},
	}
}

// Run runs the scenarios of cfg, Runs times each (run 1 of every scenario,
// then run 2, …, so that every scenario sees the same machine conditions),
// and returns the report with medians and ratios. It returns at the first
// error: a scenario that cannot account for every job fails rather than
// report a number.
func Run(ctx context.Context, cfg Config) (rep *Report, err error) {
	cfg, err = cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	progress := cfg.Progress
	if progress == nil {
		progress = io.Discard
	}
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err != nil {
			return nil, fmt.Errorf("bench: cpu profile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("bench: cpu profile: %w", err)
		}
		defer func() {
			pprof.StopCPUProfile()
			if cerr := f.Close(); cerr != nil && err == nil {
				err = fmt.Errorf("bench: cpu profile: %w", cerr)
			}
		}()
	}

	e := newEnv(cfg)
	defer func() {
		for _, c := range slices.Backward(e.closers) {
			c()
		}
	}()
	if cfg.needsRedis() {
		e.url = cfg.RedisURL
		if e.url == "" {
			fmt.Fprintln(progress, "bench: starting a throwaway redis-server on a free loopback port (--save \"\")")
			srv, err := startRedis(ctx)
			if err != nil {
				return nil, err
			}
			defer srv.stop()
			e.url = srv.url
		} else {
			e.report.RedisURL = redact.URL(cfg.RedisURL)
		}
		opts, err := goredis.ParseURL(e.url)
		if err != nil {
			return nil, fmt.Errorf("bench: --redis-url %s: %w", redact.URL(e.url), err)
		}
		rdb := goredis.NewClient(opts)
		defer rdb.Close()
		if err := rdb.Ping(ctx).Err(); err != nil {
			return nil, fmt.Errorf("bench: connect to %s: %w", redact.URL(e.url), err)
		}
		e.rdb = rdb
		e.report.RedisVersion = redisVersion(ctx, rdb)
	}

	for run := 1; run <= cfg.Runs; run++ {
		for _, s := range cfg.Scenarios {
			rowsBefore := make(map[string]int, len(e.report.Scenarios))
			for _, r := range e.report.Scenarios {
				rowsBefore[r.Name] = len(r.Runs)
			}
			fmt.Fprintf(progress, "bench: run %d/%d %-14s ", run, cfg.Runs, s)
			t := time.Now()
			if err := scenarioFuncs[s](ctx, e); err != nil {
				fmt.Fprintln(progress, "failed")
				return nil, err
			}
			var parts []string
			for _, r := range e.report.Scenarios {
				if len(r.Runs) > rowsBefore[r.Name] {
					last := r.Runs[len(r.Runs)-1]
					part := fmt.Sprintf("%s %s/s", r.Name, thousands(last.JobsPerSec))
					if last.P99Ms != nil {
						part += fmt.Sprintf(" p99 %.2fms", *last.P99Ms)
					}
					parts = append(parts, part)
				}
			}
			fmt.Fprintf(progress, "%s (%.1fs)\n", strings.Join(parts, ", "), time.Since(t).Seconds())
		}
	}
	e.report.summarize()
	e.report.LoadAvg[1] = loadAvg()

	if cfg.MemProfile != "" {
		f, err := os.Create(cfg.MemProfile)
		if err != nil {
			return nil, fmt.Errorf("bench: memory profile: %w", err)
		}
		runtime.GC()
		werr := pprof.Lookup("allocs").WriteTo(f, 0)
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return nil, fmt.Errorf("bench: memory profile: %w", werr)
		}
	}
	return e.report, nil
}
