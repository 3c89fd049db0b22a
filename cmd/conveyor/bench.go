package main

import (
	"errors"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/conveyor-jobs/conveyor/cmd/conveyor/internal/bench"
)

// newBenchCmd builds `conveyor bench`: throughput and latency of conveyor
// against the raw Redis floor, measured in one invocation.
func newBenchCmd(a *app) *cobra.Command {
	var (
		cfg       bench.Config
		scenarios string
		asJSON    bool
		compare   string
		against   string
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure throughput and latency against the raw Redis floor",
		Long: `bench measures conveyor on this machine and compares it with a raw go-redis
loop on the same Redis, in one run so that every ratio shares the same
conditions. Scenarios (all but fairness and cluster by default, in this order):

  floor          raw go-redis: pipelined XADD of N entries (floor-publish),
                 then 8 readers with XREADGROUP COUNT 100 and pipelined
                 XACK+XDEL (floor), then one reader handing entries to
                 --concurrency worker goroutines and one acknowledging
                 goroutine (floor-workers: a hand-written job server)
  publish        conveyor Publish one at a time (one goroutine, and
                 --concurrency goroutines) and PublishBatch of 100
  process        N pre-enqueued jobs through a server on Redis, no-op
                 handler, no middleware
  process-stack  the same with middleware.Default (logging, metrics,
                 dead-letter, retry, timeout, recover)
  latency        jobs published one at a time at --rate per second while a
                 server runs: publish -> handler start, publish -> acked;
                 before it, raw go-redis at the same rate (floor-latency:
                 XADD -> XREADGROUP reply read)
  memory         process on the in-memory broker
  delayed        min(-n, --latency-jobs) jobs published at 1,000/s through a
                 running server's broker, each delayed 0-2 s at random:
                 lateness (due time -> handler start) p50/p90/p99/max
  topics         N pre-enqueued jobs over 1 (topics-1), 10 (topics-10) and
                 200 topics (topics-200), and half on one topic beside 199
                 small ones (topics-hot), through a server of 10 workers
                 with a 2 ms handler: jobs/s, and the topics' completion
                 times (max: the slowest topic's)
  priorities     N pre-enqueued jobs on one topic (priorities-1), over 3
                 topics in turn (priorities-3-turn) and over 3 topics
                 weighted 3:2:1 (priorities-3), through a server of
                 --concurrency workers, no-op handler: jobs/s against one
                 topic, and the shares of the first half processed
  fairness       (only when named) N jobs of key A drained while key B
                 publishes 10 jobs/s, the topic in 1 partition (fairness-1)
                 and in 4 (fairness-4): jobs/s of A's drain, and B's wait
                 (publish -> handler start) p50/p90/p99/max
  cluster        (only when named) one topic of N jobs on a Redis Cluster,
                 in 1 partition (cluster-1) and in 12 (cluster-12):
                 published, then processed by a server; jobs/s, each
                 master's share of the commands and Redis CPU per job, and
                 the jobs/s projected with one core per master. It uses
                 --cluster-url, or starts a throwaway Cluster of 3
                 redis-server processes

Each scenario runs --runs times (the whole list in turn) and the table shows
the median. Without --redis-url, bench starts a throwaway redis-server from
PATH on a free loopback port (no persistence) and stops it at the end. With
--redis-url, every scenario writes under a fresh "bench-…" namespace and
deletes its keys at the end; do not point it at a busy production Redis.

--json prints one JSON object on stdout and nothing else; progress goes to
stderr.

--compare OLD.json runs the scenarios and prints, instead of the table, a
before/after table against an earlier --json report: for each row, its
jobs/s, ratios to the floor, latency percentiles, CPU µs per job (conveyor
and Redis) and round trips per job, old and new, and the change in percent.
With --against NEW.json as well, it compares the two files and runs
nothing.`,
		Example: `  conveyor bench
  conveyor bench -n 100000 --runs 3 --json > bench.json
  conveyor bench --scenarios floor,process --redis-url redis://localhost:6379/0
  conveyor bench --scenarios process --cpuprofile cpu.out   # go tool pprof cpu.out
  conveyor bench -n 100000 --runs 3 --compare bench.json
  conveyor bench --compare old.json --against new.json`,
		Args:        cobra.NoArgs,
		Annotations: map[string]string{annotationNoConfig: "true"},
		RunE: run(func(cmd *cobra.Command, _ []string) error {
			var before *bench.Report
			if against != "" && compare == "" {
				return usageError(errors.New("--against needs --compare: it names the newer report of the two compared"))
			}
			if compare != "" {
				if asJSON {
					return usageError(errors.New("--json and --compare do not combine: save the run with --json, then compare the files with --compare OLD.json --against NEW.json"))
				}
				var err error
				if before, err = bench.ReadReport(compare); err != nil {
					return usageError(err)
				}
				if against != "" {
					after, err := bench.ReadReport(against)
					if err != nil {
						return usageError(err)
					}
					return bench.WriteComparison(a.stdout, before, after)
				}
			}
			cfg.Scenarios = bench.ParseScenarios(scenarios)
			cfg.Progress = a.stderr
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			rep, err := bench.Run(ctx, cfg)
			if err != nil {
				if errors.Is(err, bench.ErrInvalidConfig) {
					return usageError(err)
				}
				return err
			}
			if asJSON {
				return rep.WriteJSON(a.stdout)
			}
			if before != nil {
				return bench.WriteComparison(a.stdout, before, rep)
			}
			return rep.WriteTable(a.stdout)
		}),
	}
	f := cmd.Flags()
	f.IntVarP(&cfg.N, "jobs", "n", bench.DefaultN, "jobs per scenario")
	f.IntVar(&cfg.Concurrency, "concurrency", bench.DefaultConcurrency, "server workers, and goroutines of publish-concurrent")
	f.IntVar(&cfg.PayloadSize, "payload-size", bench.DefaultPayloadSize, "payload size in bytes (at least 30)")
	f.IntVar(&cfg.Rate, "rate", bench.DefaultRate, "publish rate of the latency scenario, jobs per second")
	f.IntSliceVar(&cfg.LatencyRates, "latency-rates", nil, "more publish rates of the latency scenario, comma-separated; each adds rows latency-<rate> and latency-ack-<rate>")
	f.IntSliceVar(&cfg.RSSSamples, "rss-samples", nil, "percentages of the jobs acknowledged at which the processing scenarios read RSS, e.g. 10,50,100")
	f.IntVar(&cfg.LatencyJobs, "latency-jobs", bench.DefaultLatencyJobs, "most jobs the latency and delayed scenarios publish (they publish min(-n, this))")
	f.StringVar(&scenarios, "scenarios", strings.Join(bench.DefaultScenarios, ","), "comma-separated scenarios to run (known: "+strings.Join(bench.Scenarios, ", ")+")")
	f.IntVar(&cfg.Runs, "runs", bench.DefaultRuns, "runs of each scenario; the table shows the median")
	f.BoolVar(&asJSON, "json", false, "print the report as one JSON object on stdout")
	f.StringVar(&compare, "compare", "", "print a before/after table of this earlier --json report and this run")
	f.StringVar(&against, "against", "", "with --compare: compare with this --json report instead of running")
	f.StringVar(&cfg.RedisURL, "redis-url", "", "Redis to measure (default: a throwaway redis-server from PATH)")
	f.IntVar(&cfg.Partitions, "partitions", 0, "partitions of the topic of the process and process-stack scenarios (0 or 1: one); each run starts once the layout of one partition it replaced is dropped, a few seconds after the change")
	f.StringVar(&cfg.ClusterURL, "cluster-url", "", "Redis Cluster for the cluster scenario, redis://h1:p1,h2:p2,… (default: a throwaway 3-master Cluster)")
	f.StringVar(&cfg.CPUProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file")
	f.StringVar(&cfg.MemProfile, "memprofile", "", "write an allocation profile to this file at the end")
	return cmd
}
