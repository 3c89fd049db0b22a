// Command custom-middleware shows a middleware of your own stacked with
// conveyor's recommended stack, middleware.Default, on the in-memory broker.
//
// The custom middleware, TenantQuota (quota.go), lets each tenant run a fixed
// number of jobs and dead-letters the rest. Default around it logs every
// outcome, retries failures (here 50ms apart, to keep the demo short),
// recovers panics and fills in the dead letters' reason and handler.
//
// Five jobs are published to the "agent" topic:
//
//   - a1 (tenant acme) succeeds;
//   - a2 (acme) fails once, is retried by Default 50ms later and succeeds on
//     attempt 2 (the retry does not count against the quota again);
//   - a3 (acme) is over acme's quota of 2 and is dead-lettered;
//   - t1 (tenant trial) succeeds;
//   - anon has no tenant and is dead-lettered.
//
// It prints one line per event and exits 0 once all five are accounted for,
// or 1 after 10 seconds.
//
//	go run ./examples/custom-middleware
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/memory"
	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/middleware"
	"github.com/conveyor-jobs/conveyor/retry"
	"github.com/conveyor-jobs/conveyor/server"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := run(ctx, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "custom-middleware:", err)
		os.Exit(1)
	}
}

// run publishes the demo jobs, processes them until each has reached its
// final outcome, and writes one line per event to w.
func run(ctx context.Context, w io.Writer) error {
	b := memory.New(nil)
	defer b.Close()

	out := &reporter{w: w, pending: map[string]bool{"a1": true, "a2": true, "a3": true, "t1": true, "anon": true}, done: make(chan struct{})}

	// Default's log records, without time and duration so that the output
	// reads well.
	logger := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey || a.Key == "duration" {
				return slog.Attr{}
			}
			return a
		},
	}))

	mux := job.NewMux()
	// The recommended stack, for every topic.
	mux.Use(middleware.Default(&middleware.DefaultOptions{
		Logger:  logger,
		Logging: &middleware.LoggingOptions{AckLevel: slog.LevelInfo},
		Retry: &retry.Policy{
			Schedule:            []time.Duration{50 * time.Millisecond},
			MaxAttempts:         3,
			RandomizationFactor: retry.NoJitter,
		},
		DeadLetter: &middleware.DeadLetterOptions{
			HandlerName: func(j *job.Job) string { return mux.HandlerName(j.Topic) },
		},
		Timeout: 5 * time.Second,
	}))

	// Our own middleware, for the "agent" topic only, inside Default: Default
	// logs, retries and dead-letters what the quota decides.
	mux.With(TenantQuota(map[string]int{"acme": 2, "trial": 1})).Handle("agent", &agentHandler{out: out})

	// Dead letters are jobs too, on topic "agent.dlq", without the quota.
	mux.HandleFunc(job.DeadLetterTopic("agent"), func(ctx context.Context, j *job.Job) error {
		f := j.Failure
		if f == nil {
			f = &job.Failure{}
		}
		out.final(j.ID, "%s: dead-lettered: reason=%s handler=%s error=%q", j.ID, f.Reason, f.Handler, f.Error)
		return nil
	})

	srv, err := server.New(b, mux, &server.Options{
		Concurrency: 1, // one job at a time, so the quota is used in publication order
		Logger:      slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return err
	}

	for _, m := range []broker.Message{
		{Topic: "agent", ID: "a1", Payload: []byte(`{}`), Headers: map[string]string{"tenant": "acme"}},
		{Topic: "agent", ID: "a2", Payload: []byte(`{}`), Headers: map[string]string{"tenant": "acme"}},
		{Topic: "agent", ID: "a3", Payload: []byte(`{}`), Headers: map[string]string{"tenant": "acme"}},
		{Topic: "agent", ID: "t1", Payload: []byte(`{}`), Headers: map[string]string{"tenant": "trial"}},
		{Topic: "agent", ID: "anon", Payload: []byte(`{}`)},
	} {
		if _, err := b.Publish(ctx, m); err != nil {
			return err
		}
	}

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	result := make(chan error, 1)
	go func() { result <- srv.Run(runCtx) }()

	select {
	case <-out.done:
		stop()
		if err := <-result; err != nil {
			return err
		}
		out.printf("all jobs accounted for")
		return nil
	case <-ctx.Done():
		stop()
		<-result
		return fmt.Errorf("timed out waiting for %v: %w", out.missing(), ctx.Err())
	case err := <-result:
		return fmt.Errorf("server stopped early: %v", err)
	}
}

// agentHandler processes "agent" jobs: a2 fails on its first attempt.
type agentHandler struct{ out *reporter }

func (h *agentHandler) ProcessJob(ctx context.Context, j *job.Job) error {
	if j.ID == "a2" && j.Attempt == 1 {
		return errors.New("tool call failed")
	}
	h.out.final(j.ID, "%s: done for %s on attempt %d", j.ID, j.Header("tenant"), j.Attempt)
	return nil
}

// HandlerName names the handler in dead letters (job.Namer).
func (h *agentHandler) HandlerName() string { return "agent-handler" }

// reporter prints lines from concurrent handlers and the logger, and tracks
// which jobs have reached their final outcome.
type reporter struct {
	mu      sync.Mutex
	w       io.Writer
	pending map[string]bool
	done    chan struct{}
}

// Write lets the logger print through the reporter.
func (r *reporter) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.w.Write(p)
}

func (r *reporter) printf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(r.w, format+"\n", args...)
}

func (r *reporter) final(id, format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(r.w, format+"\n", args...)
	if r.pending[id] {
		delete(r.pending, id)
		if len(r.pending) == 0 {
			close(r.done)
		}
	}
}

func (r *reporter) missing() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ids []string
	for id := range r.pending {
		ids = append(ids, id)
	}
	return ids
}
