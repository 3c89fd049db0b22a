package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/redis"
	"github.com/conveyor-jobs/conveyor/config"
	promc "github.com/conveyor-jobs/conveyor/contrib/prometheus"
	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/middleware"
	"github.com/conveyor-jobs/conveyor/middleware/redisstore"
	"github.com/conveyor-jobs/conveyor/server"
)

// demoJob is the payload the demonstration handler understands.
type demoJob struct {
	// Prompt is logged.
	Prompt string `json:"prompt"`
	// Fail makes every attempt fail: the job is retried on the retry
	// schedule, then dead-lettered.
	Fail bool `json:"fail"`
	// Permanent makes the job fail permanently: dead-lettered at once.
	Permanent bool `json:"permanent"`
	// Sleep is how long the handler works ("2s"), to watch a graceful
	// shutdown wait for it.
	Sleep string `json:"sleep"`
}

// errDemoFailure is what the demonstration handler returns for {"fail":true}.
var errDemoFailure = errors.New("demo: the payload asked to fail")

// demoHandler logs each job's prompt and fails when the payload asks to.
func demoHandler(log *slog.Logger) job.Handler {
	return job.Typed(func(ctx context.Context, p demoJob, j *job.Job) error {
		log.InfoContext(ctx, "handling job", "topic", j.Topic, "job_id", j.ID, "attempt", j.Attempt, "prompt", p.Prompt)
		if p.Sleep != "" {
			d, err := time.ParseDuration(p.Sleep)
			if err != nil {
				return job.Permanent(fmt.Errorf("demo: sleep %q: %w", p.Sleep, err))
			}
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		switch {
		case p.Permanent:
			return job.Permanent(errors.New("demo: the payload asked to fail permanently"))
		case p.Fail:
			return errDemoFailure
		}
		return nil
	})
}

func newWorkerCmd(a *app) *cobra.Command {
	var (
		backend, consumer, metricsAddr string
		topics                         []string
		concurrency                    int
	)
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run a worker with the recommended middleware stack and a demonstration handler",
		Long: `worker runs a conveyor server on the given topics with the recommended
middleware stack (logging, Prometheus metrics, dead-letter routing, retry on
retry.schedule, rate limits from ratelimit.rules, circuit breaking, handler
timeout, panic recovery) and a demonstration handler. The handler decodes
{"prompt": "..."} and logs it; it fails on {"fail": true} (retried on the
schedule, then dead-lettered), fails permanently on {"permanent": true}
(dead-lettered at once), works for {"sleep": "5s"} and acknowledges
everything else. A payload that is not a JSON object is dead-lettered as
undecodable.

It serves /healthz, /readyz and /metrics on metrics.addr. SIGINT or SIGTERM
stop fetching and wait up to worker.shutdown_timeout for running jobs;
jobs still running then are redelivered after the lease.

Flags override the configuration.`,
		Example: `  conveyor worker --topic orchestrate
  conveyor worker --backend redis --topic orchestrate --consumer agentic-worker-1 --concurrency 4
  CONVEYOR_RETRY_SCHEDULE=1s,2s conveyor worker --topic orchestrate   # quick retries for a demo
  curl -s localhost:9090/readyz; curl -s localhost:9090/metrics | grep conveyor_`,
		Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, _ []string) error {
			c := a.cfg
			flags := cmd.Flags()
			if flags.Changed("backend") {
				if backend != config.BackendRedis && backend != config.BackendMemory {
					return usagef("--backend must be redis or memory, not %q", backend)
				}
				c.Backend = backend
			}
			if flags.Changed("topic") {
				c.Worker.Topics = topics
			}
			if flags.Changed("consumer") {
				c.Redis.Consumer = consumer
			}
			if flags.Changed("concurrency") {
				if concurrency < 1 {
					return usagef("--concurrency must be at least 1")
				}
				c.Worker.Concurrency = concurrency
			}
			if flags.Changed("metrics-addr") {
				c.Metrics.Addr = metricsAddr
			}
			if len(c.Worker.Topics) == 0 {
				return usagef("give the topics to consume: --topic T (repeatable) or CONVEYOR_WORKER_TOPICS")
			}
			for _, t := range c.Worker.Topics {
				if err := a.checkTopic(t); err != nil {
					return err
				}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runWorker(ctx, a, c)
		}),
	}
	f := cmd.Flags()
	f.StringVar(&backend, "backend", "", "redis or memory (default: backend / QUEUE_BACKEND)")
	f.StringArrayVarP(&topics, "topic", "t", nil, "topic to consume (repeatable; default: worker.topics)")
	f.StringVar(&consumer, "consumer", "", "consumer name in the group (default: REDIS_CONSUMER, else hostname-pid)")
	f.IntVarP(&concurrency, "concurrency", "c", 0, "jobs processed at once (default: worker.concurrency)")
	f.StringVar(&metricsAddr, "metrics-addr", "", "serve /metrics, /healthz, /readyz here; empty disables (default: metrics.addr)")
	return cmd
}

// runWorker runs the worker until ctx ends, then drains it.
func runWorker(ctx context.Context, a *app, c *config.Config) error {
	log := c.NewLogger(a.stderr)
	b, err := a.openBroker()
	if err != nil {
		return err // printed once, by execute
	}
	defer b.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	rec, err := promc.NewRecorder(reg, nil)
	if err != nil {
		return err
	}
	warnOtherNamespaces(ctx, b, c, log)

	var queues *promc.QueueCollector
	if in, ok := b.(broker.Inspector); ok {
		queues = promc.NewQueueCollector(in, &promc.QueueCollectorOptions{Topics: c.Worker.Topics, Logger: log})
		reg.MustRegister(queues)
	}

	var store middleware.LimiterStore
	if c.RateLimit.Distributed {
		rb, ok := b.(*redis.Broker)
		if !ok {
			return usagef("ratelimit.distributed needs the redis backend")
		}
		if store, err = redisstore.New(rb.Client(), &redisstore.Options{Namespace: c.Redis.Namespace}); err != nil {
			return err
		}
	}

	mux := job.NewMux()
	mux.Use(middleware.Default(c.MiddlewareOptions(log, rec, store)))
	h := demoHandler(log)
	for _, t := range c.Worker.Topics {
		if err := mux.Register(t, h); err != nil {
			return usageError(err)
		}
	}
	srv, err := server.New(b, mux, &server.Options{
		Concurrency:     c.Worker.Concurrency,
		Topics:          c.Worker.Topics,
		ShutdownTimeout: c.Worker.ShutdownTimeout,
		Logger:          log,
	})
	if err != nil {
		return err
	}

	var httpSrv *http.Server
	httpDone := make(chan error, 1)
	if c.Metrics.Addr != "" {
		ln, err := net.Listen("tcp", c.Metrics.Addr)
		if err != nil {
			return fmt.Errorf("metrics.addr %s: %w", c.Metrics.Addr, err)
		}
		hm := http.NewServeMux()
		hm.Handle("/healthz", srv.Handler())
		hm.Handle("/readyz", srv.Handler())
		hm.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
		httpSrv = &http.Server{Handler: hm, ReadHeaderTimeout: 5 * time.Second}
		go func() { httpDone <- httpSrv.Serve(ln) }()
		log.Info("serving /metrics, /healthz and /readyz", "addr", "http://"+ln.Addr().String())
	}
	if queues != nil {
		queues.Start()
		defer queues.Stop()
	}

	where := []any{"backend", c.Backend}
	if c.Backend != config.BackendMemory {
		where = append(where, "url", config.RedactURL(c.Redis.URL),
			"namespace", c.Redis.Namespace, "group", c.Redis.Group, "consumer", c.Redis.Consumer)
	}
	log.Info("worker started", append(where, "topics", c.Worker.Topics, "concurrency", c.Worker.Concurrency)...)
	runErr := srv.Run(ctx)
	st := srv.Stats()
	log.Info("worker stopped", "acked", st.Acked, "retried", st.Retried, "dead_lettered", st.DeadLettered, "abandoned", st.Abandoned)

	if httpSrv != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = httpSrv.Shutdown(sctx)
		cancel()
		if err := <-httpDone; err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("metrics server", "error", err)
		}
	}
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		return runErr
	}
	return nil
}

// warnOtherNamespaces logs a warning for each topic that is empty in the
// worker's namespace but exists in another one on the same Redis: the
// producer probably uses a different REDIS_NAMESPACE.
func warnOtherNamespaces(ctx context.Context, b broker.Broker, c *config.Config, log *slog.Logger) {
	in, ok := b.(broker.Inspector)
	if !ok {
		return
	}
	for _, t := range c.Worker.Topics {
		info, err := in.Inspect(ctx, t)
		if err != nil || !isEmpty(info) {
			continue
		}
		if other := namespacesWith(ctx, b, c.Redis.Namespace, t); len(other) > 0 {
			log.Warn("topic is empty in this namespace but exists in others: do producers use the same REDIS_NAMESPACE?",
				"topic", t, "namespace", c.Redis.Namespace, "other_namespaces", other)
		}
	}
}
