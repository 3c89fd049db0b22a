// Command quickstart runs conveyor in one process with the in-memory broker:
// it registers a typed handler on the "orchestrate" topic and a handler for
// its dead letters, publishes three jobs, and prints what happens to each:
//
//   - "good" succeeds on its first attempt;
//   - "flaky" fails once, asks to be retried 200ms later, then succeeds;
//   - "bad" has a payload that is not JSON: it cannot be decoded, so it goes
//     straight to the dead-letter topic "orchestrate.dlq", where its handler
//     prints the failure.
//
// It exits 0 once all three outcomes are seen, or 1 after 10 seconds.
//
//	go run ./examples/quickstart
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
	"github.com/conveyor-jobs/conveyor/server"
)

// Task is the payload of an "orchestrate" job.
type Task struct {
	Prompt string `json:"prompt"`
}

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := run(ctx, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

// run publishes the demo jobs, processes them until each has reached its
// final outcome, and writes one line per event to w.
func run(ctx context.Context, w io.Writer) error {
	b := memory.New(nil)
	defer b.Close()

	out := &reporter{w: w, pending: map[string]bool{"good": true, "flaky": true, "bad": true}, done: make(chan struct{})}

	mux := job.NewMux()
	mux.Handle("orchestrate", job.Typed(func(ctx context.Context, t Task, j *job.Job) error {
		if t.Prompt == "flaky" && j.Attempt == 1 {
			out.printf("%s: attempt %d failed (model timed out), retrying in 200ms", j.ID, j.Attempt)
			return job.RetryIn(200*time.Millisecond, errors.New("model timed out"))
		}
		out.final(j.ID, "%s: done on attempt %d (prompt %q)", j.ID, j.Attempt, t.Prompt)
		return nil
	}))
	mux.HandleFunc(job.DeadLetterTopic("orchestrate"), func(ctx context.Context, j *job.Job) error {
		var f job.Failure
		if j.Failure != nil {
			f = *j.Failure
		}
		out.final(j.ID, "%s: dead-lettered from %s: reason=%s error=%s", j.ID, f.Origin, f.Reason, f.Error)
		return nil
	})

	srv, err := server.New(b, mux, &server.Options{
		Logger: slog.New(slog.DiscardHandler), // this demo prints its own lines
	})
	if err != nil {
		return err
	}

	for _, m := range []broker.Message{
		{Topic: "orchestrate", ID: "good", Payload: []byte(`{"prompt":"summarise the incident"}`)},
		{Topic: "orchestrate", ID: "flaky", Payload: []byte(`{"prompt":"flaky"}`)},
		{Topic: "orchestrate", ID: "bad", Payload: []byte(`{not json`)},
	} {
		if _, err := b.Publish(ctx, m); err != nil {
			return err
		}
		out.printf("%s: published to %s", m.ID, m.Topic)
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

// reporter prints lines from concurrent handlers and tracks which jobs have
// reached their final outcome.
type reporter struct {
	mu      sync.Mutex
	w       io.Writer
	pending map[string]bool
	done    chan struct{}
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
