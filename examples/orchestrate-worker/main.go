// Command orchestrate-worker is a production-shaped conveyor worker on Redis:
// a typed handler for the "orchestrate" topic, the recommended middleware
// stack (logging, Prometheus metrics, dead-letter routing, retry 5s/15s/60s,
// a rate limit per tenant, a circuit breaker, a handler timeout, panic
// recovery), /metrics, /healthz and /readyz, and a graceful shutdown on
// SIGINT or SIGTERM.
//
// It reads its settings from the environment:
//
//	REDIS_URL        redis://default:PASSWORD@localhost:6379/0 (required)
//	REDIS_NAMESPACE  key prefix (default "conveyor")
//	REDIS_CONSUMER   this worker's name in the group (default hostname-pid)
//	METRICS_ADDR     where to serve /metrics, /healthz, /readyz (default 127.0.0.1:9090; empty disables)
//
//	REDIS_URL=redis://localhost:6379/0 go run ./examples/orchestrate-worker
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
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/conveyor-jobs/conveyor/broker/redis"
	"github.com/conveyor-jobs/conveyor/config"
	promc "github.com/conveyor-jobs/conveyor/contrib/prometheus"
	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/middleware"
	"github.com/conveyor-jobs/conveyor/retry"
	"github.com/conveyor-jobs/conveyor/server"
)

// Orchestrate is the payload of an "orchestrate" job.
type Orchestrate struct {
	Prompt string `json:"prompt"`
	// Steps is how many agent steps to plan; it must be positive.
	Steps int `json:"steps"`
}

// errInvalid marks requests that no retry can fix.
var errInvalid = errors.New("invalid request")

// handle is the business logic. It returns nil when the job is done, a
// permanent error for a request that can never succeed (dead-lettered at
// once), and any other error for a failure worth retrying.
func handle(ctx context.Context, req Orchestrate, j *job.Job, log *slog.Logger) error {
	if req.Prompt == "" || req.Steps <= 0 {
		return job.Permanent(fmt.Errorf("%w: prompt and a positive steps are required", errInvalid))
	}
	log.InfoContext(ctx, "orchestrating", "job_id", j.ID, "tenant", j.Header("tenant"),
		"attempt", j.Attempt, "prompt", req.Prompt, "steps", req.Steps)
	// Call the model, tools, … here, passing ctx so that the handler
	// timeout and a hard shutdown cancel them.
	return nil
}

func main() {
	// The only place that handles signals: the library never does.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(ctx, os.LookupEnv, log, nil); err != nil {
		log.Error("worker failed", "error", err)
		os.Exit(1)
	}
}

// run connects to Redis, serves the probes and metrics, and processes jobs
// until ctx ends, then drains. env reads the settings; ready, when not nil,
// receives the metrics address once the worker runs.
func run(ctx context.Context, env func(string) (string, bool), log *slog.Logger, ready chan<- string) error {
	getenv := func(name string) string { v, _ := env(name); return v }
	url := getenv("REDIS_URL")
	if url == "" {
		return errors.New("REDIS_URL is not set (for example redis://default:PASSWORD@localhost:6379/0)")
	}
	b, err := redis.Open(url, &redis.Options{
		Namespace: getenv("REDIS_NAMESPACE"),
		Consumer:  getenv("REDIS_CONSUMER"),
		Logger:    log,
	})
	if err != nil {
		// The error never holds the password; Diagnose says what to do.
		return fmt.Errorf("%w\nwhat to do: %s", err, config.Diagnose(err, url))
	}
	defer b.Close()

	reg := prometheus.NewRegistry()
	rec, err := promc.NewRecorder(reg, nil)
	if err != nil {
		return err
	}
	queues := promc.NewQueueCollector(b, &promc.QueueCollectorOptions{Topics: []string{"orchestrate"}, Logger: log})
	reg.MustRegister(queues)
	queues.Start()
	defer queues.Stop()

	mux := job.NewMux()
	mux.Use(middleware.Default(&middleware.DefaultOptions{
		Logger:   log,
		Recorder: rec,
		Retry:    &retry.Policy{Schedule: retry.DefaultSchedule()}, // 5s, 15s, 60s, then orchestrate.dlq
		RateLimit: &middleware.RateLimitOptions{
			Key:   middleware.ByTenant(),       // one bucket per "tenant" header
			Limit: middleware.PerSecond(5, 10), // 5 jobs/s per tenant, bursts of 10
		},
		Breakers: middleware.NewBreakers(&middleware.BreakerOptions{Logger: log}),
		Timeout:  2 * time.Minute,
	}))
	mux.Handle("orchestrate", job.Typed(func(ctx context.Context, req Orchestrate, j *job.Job) error {
		return handle(ctx, req, j, log)
	}))

	srv, err := server.New(b, mux, &server.Options{Concurrency: 8, ShutdownTimeout: 30 * time.Second, Logger: log})
	if err != nil {
		return err
	}

	addr := "127.0.0.1:9090"
	if v, ok := env("METRICS_ADDR"); ok {
		addr = v
	}
	if addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return err
		}
		h := http.NewServeMux()
		h.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		h.Handle("/", srv.Handler()) // /healthz and /readyz
		hs := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
		served := make(chan struct{})
		go func() { defer close(served); _ = hs.Serve(ln) }()
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = hs.Shutdown(sctx)
			<-served
		}()
		addr = ln.Addr().String()
		log.Info("serving /metrics, /healthz, /readyz", "addr", addr)
	}
	if ready != nil {
		ready <- addr
	}
	log.Info("worker running", "url", redis.RedactURL(url), "topics", srv.Topics())
	// Run returns after ctx ends and the jobs in flight are done (or the
	// shutdown timeout leaves them to be redelivered).
	return srv.Run(ctx)
}
