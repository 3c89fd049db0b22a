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
	"strings"
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
	"github.com/conveyor-jobs/conveyor/internal/redact"
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

// workerHandler chooses the handler of conveyor worker.
type workerHandler struct {
	// exec, when set, is the command line of an exec handler.
	exec string
	// killGrace is the exec handler's time between SIGTERM and SIGKILL.
	killGrace time.Duration
	// demo selects the demonstration handler.
	demo bool
}

// errNoHandler is what conveyor worker says when it has no handler to run.
const errNoHandler = `give the handler that processes the jobs:
  --exec 'CMD'  run CMD once per job: payload on stdin, job fields in CONVEYOR_*
                variables, exit status 0 acks (see conveyor worker --help)
  or build a worker in Go with server.New (example: examples/orchestrate-worker)
  (--demo runs a demonstration handler that acknowledges every job it can decode)`

func newWorkerCmd(a *app) *cobra.Command {
	var (
		backend, consumer, metricsAddr string
		topics                         []string
		concurrency                    int
		timeout                        time.Duration
		wh                             workerHandler
	)
	cmd := &cobra.Command{
		Use:   "worker --topic T --exec 'CMD ARGS'",
		Short: "Run a command once per job, with the recommended middleware stack",
		Long: `worker consumes the given topics and runs --exec CMD once per job, up to
--concurrency at a time, through the recommended middleware stack (logging,
Prometheus metrics, dead-letter routing, retry on retry.schedule, rate limits
from ratelimit.rules, circuit breaking, handler timeout, panic recovery).

CMD is run by /bin/sh -c, so quoting, pipes and $VARIABLES work as in a
shell; job data never becomes part of the command line. Each job's process
gets:
  stdin                    the payload, as sent
  CONVEYOR_JOB_ID          the job's ID
  CONVEYOR_TOPIC           the topic it was read from
  CONVEYOR_ATTEMPT         1 on the first attempt, 2 on the first retry…
  CONVEYOR_ENQUEUED_AT     first enqueue time, RFC 3339 UTC with milliseconds
  CONVEYOR_ENQUEUED_AT_MS  the same in Unix milliseconds
  CONVEYOR_DEADLINE        when the job times out (RFC 3339), if it can
  CONVEYOR_HEADERS         every header, as a JSON object
  CONVEYOR_HEADER_<NAME>   each header; NAME is the header name in upper case
                           with characters other than A-Z and 0-9 as _ (when
                           two names map to one variable, the first in byte
                           order wins; CONVEYOR_HEADERS has both)
and the worker's own environment.

The exit status decides what happens to the job:
  0               acknowledged
  65 EX_DATAERR   dead-lettered at once
  75 EX_TEMPFAIL  retried per retry policy
  anything else,  a failure retried per policy, dead-lettered after
  or a signal     the last attempt
The last 4 KiB of stderr are the failure's error, in the retried job and
in the dead letter. (The shell reports a command that a signal ended as
status 128+n: 143 for SIGTERM.) Each line the process writes to stdout
or stderr is logged ("handler output") with the job's ID; log.level warn
drops them.

Each process leads a process group of its own. When the job times out
(--timeout, else worker.handler_timeout; none when zero) the group gets
SIGTERM, then SIGKILL after --kill-grace; a process that ends then fails
with the timeout, unless it exits 0 or 65. When the process exits,
whatever it left running in its group is killed.

SIGINT or SIGTERM stop fetching, forward SIGTERM to the running processes'
groups and wait up to worker.shutdown_timeout for them to exit: their
exit statuses settle their jobs as above (exit 0 to finish cleanly).
Processes still running then get SIGKILL and their jobs are redelivered
after the lease. A job fetched but not started is put back at once,
without spending an attempt.

It serves /healthz, /readyz and /metrics on metrics.addr. Flags override
the configuration.

To run handlers written in Go, build a worker with server.New instead (see
examples/orchestrate-worker). --demo runs a demonstration handler that
acknowledges every job whose payload is a JSON object; it fails on
{"fail": true}, fails permanently on {"permanent": true} and works for
{"sleep": "5s"}.`,
		Example: `  conveyor worker --topic orchestrate --exec './handle.py'
  conveyor worker --topic resize --exec 'convert - -resize 50% "out/$CONVEYOR_JOB_ID.png"' --concurrency 4
  conveyor worker --topic orchestrate --exec 'python3 handle.py --model small' --timeout 30s
  CONVEYOR_RETRY_SCHEDULE=1s,2s conveyor worker --topic orchestrate --demo   # try the stack
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
			if flags.Changed("timeout") {
				if timeout < 0 {
					return usagef("--timeout must not be negative")
				}
				c.Worker.HandlerTimeout = timeout
			}
			if wh.killGrace < 0 {
				return usagef("--kill-grace must not be negative")
			}
			if len(c.Worker.Topics) == 0 {
				return usagef("give the topics to consume: --topic T (repeatable) or CONVEYOR_WORKER_TOPICS")
			}
			for _, t := range c.Worker.Topics {
				if err := a.checkTopic(t); err != nil {
					return err
				}
			}
			switch {
			case flags.Changed("exec") && wh.demo:
				return usagef("give --exec or --demo, not both")
			case flags.Changed("exec") && strings.TrimSpace(wh.exec) == "":
				return usagef("--exec needs a command")
			case !flags.Changed("exec") && !wh.demo:
				return usageError(errors.New(errNoHandler))
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runWorker(ctx, a, c, wh)
		}),
	}
	f := cmd.Flags()
	f.StringVar(&wh.exec, "exec", "", "run this command (by /bin/sh -c) once per job")
	f.BoolVar(&wh.demo, "demo", false, "run the demonstration handler instead of --exec")
	f.StringVar(&backend, "backend", "", "redis or memory (default: backend / QUEUE_BACKEND)")
	f.StringArrayVarP(&topics, "topic", "t", nil, "topic to consume (repeatable; default: worker.topics)")
	f.StringVar(&consumer, "consumer", "", "consumer name in the group (default: REDIS_CONSUMER, else hostname-pid)")
	f.IntVarP(&concurrency, "concurrency", "c", 0, "jobs processed at once (default: worker.concurrency)")
	f.DurationVar(&timeout, "timeout", 0, "per-job handler timeout; 0 means none (default: worker.handler_timeout)")
	f.DurationVar(&wh.killGrace, "kill-grace", 10*time.Second, "time between SIGTERM and SIGKILL when a job times out")
	f.StringVar(&metricsAddr, "metrics-addr", "", "serve /metrics, /healthz, /readyz here; empty disables (default: metrics.addr)")
	return cmd
}

// runWorker runs the worker until ctx ends, then drains it.
func runWorker(ctx context.Context, a *app, c *config.Config, wh workerHandler) error {
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
	var h job.Handler
	if wh.demo {
		log.Warn("demonstration handler: it acknowledges every job it can decode, without doing any work")
		h = demoHandler(log)
	} else {
		eh := newExecHandler(execOptions{Command: wh.exec, KillGrace: wh.killGrace, Logger: log})
		// Forward the shutdown to the running processes as the drain starts.
		defer context.AfterFunc(ctx, eh.Terminate)()
		h = eh
	}
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
		where = append(where, "url", redact.URL(c.Redis.URL),
			"namespace", c.Redis.Namespace, "group", c.Redis.Group, "consumer", c.Redis.Consumer)
	}
	where = append(where, "topics", c.Worker.Topics, "concurrency", c.Worker.Concurrency)
	if !wh.demo {
		where = append(where, "exec", wh.exec)
	}
	log.Info("worker started", where...)
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
