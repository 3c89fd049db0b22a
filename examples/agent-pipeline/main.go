// Command agent-pipeline runs an AI-agent pipeline as conveyor jobs: an
// "orchestrate" job plans the steps of a goal and opens a batch of "step"
// jobs, one per step (package workflow); when every step has ended, the
// batch's callback, an "aggregate" job, runs once and prints the steps'
// combined results.
//
//	orchestrate ──► step: research ─┐
//	            ├─► step: draft    ─┼──► aggregate (once, with every result)
//	            └─► step: review   ─┘
//
// It runs on the in-memory broker, or on Redis when REDIS_URL is set
// (REDIS_NAMESPACE sets the key prefix), and exits once the aggregate has
// run, or after 30 seconds.
//
//	go run ./examples/agent-pipeline
//	REDIS_URL=redis://localhost:6379/0 go run ./examples/agent-pipeline
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/memory"
	"github.com/conveyor-jobs/conveyor/broker/redis"
	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/server"
	"github.com/conveyor-jobs/conveyor/workflow"
)

// Goal is the payload of an "orchestrate" job.
type Goal struct {
	Goal  string   `json:"goal"`
	Steps []string `json:"steps"`
}

// Step is the payload of a "step" job.
type Step struct {
	Goal string `json:"goal"`
	Name string `json:"name"`
}

// StepResult is what a step records as its result.
type StepResult struct {
	Step   string `json:"step"`
	Output string `json:"output"`
}

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run(ctx, os.LookupEnv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "agent-pipeline:", err)
		os.Exit(1)
	}
}

// openBroker returns the memory broker, or the Redis one when REDIS_URL is
// set.
func openBroker(lookup func(string) (string, bool)) (broker.Broker, error) {
	url, ok := lookup("REDIS_URL")
	if !ok || url == "" {
		return memory.New(nil), nil
	}
	ns, _ := lookup("REDIS_NAMESPACE")
	return redis.Open(url, &redis.Options{Namespace: ns, Logger: slog.New(slog.DiscardHandler)})
}

// run publishes one goal and serves the pipeline until its aggregate ran.
func run(ctx context.Context, lookup func(string) (string, bool), w io.Writer) error {
	// Handlers run concurrently: the aggregate may even print before the
	// orchestrate that opened its batch has returned.
	out := &lockedWriter{w: w}
	b, err := openBroker(lookup)
	if err != nil {
		return err
	}
	defer b.Close()
	wf, err := workflow.New(b)
	if err != nil {
		return err
	}
	done := make(chan struct{})
	mux := job.NewMux()

	// orchestrate plans the steps and opens them as a batch whose callback
	// is the aggregate. A step's handler could open a batch of its own with
	// wf.OpenChild: the aggregate would then wait for it too.
	mux.Handle("orchestrate", job.Typed(func(ctx context.Context, g Goal, j *job.Job) error {
		if len(g.Steps) == 0 {
			return job.Permanent(errors.New("a goal needs steps"))
		}
		members := make([]broker.Message, len(g.Steps))
		for i, name := range g.Steps {
			p, _ := json.Marshal(Step{Goal: g.Goal, Name: name})
			// A stable ID per step makes a re-run of orchestrate (after a
			// crash) publish the same steps, counted once.
			members[i] = broker.Message{Topic: "step", ID: fmt.Sprintf("%s-step-%d", j.ID, i+1), Payload: p}
		}
		agg, _ := json.Marshal(g)
		id, err := wf.OpenBatch(ctx, workflow.Batch{
			ID:       "pipeline-" + j.ID,
			Members:  members,
			Callback: &broker.Message{Topic: "aggregate", Payload: agg},
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "orchestrate: %q planned %d steps as batch %s\n", g.Goal, len(g.Steps), id)
		return nil
	}))

	// step does one step's work and records its result.
	mux.Handle("step", job.TypedResult(func(ctx context.Context, s Step, j *job.Job) (StepResult, error) {
		job.Progress(ctx, 0.5, "working on "+s.Name)
		return StepResult{Step: s.Name, Output: fmt.Sprintf("%s done for %q", s.Name, s.Goal)}, nil
	}))

	// aggregate runs once, when every step has ended, and combines the
	// results in the order the steps were planned.
	mux.Handle("aggregate", job.Typed(func(ctx context.Context, g Goal, j *job.Job) error {
		results, bi, err := wf.Results(ctx, j)
		if err != nil {
			return err
		}
		c := workflow.CountsOf(j)
		fmt.Fprintf(out, "aggregate: %q: %d of %d steps succeeded, %d dead\n", g.Goal, c.Succeeded, c.Total, c.Dead)
		var lines []string
		for _, m := range bi.Members {
			var r StepResult
			if raw, ok := results[m.ID]; ok && json.Unmarshal(raw, &r) == nil {
				lines = append(lines, fmt.Sprintf("  %s: %s", r.Step, r.Output))
			} else {
				lines = append(lines, fmt.Sprintf("  %s: %s, no result", m.ID, m.State))
			}
		}
		fmt.Fprintln(out, strings.Join(lines, "\n"))
		close(done)
		return nil
	}))

	srv, err := server.New(b, mux, &server.Options{Concurrency: 4, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	p, _ := json.Marshal(Goal{Goal: "write a launch post", Steps: []string{"research", "draft", "review"}})
	if _, err := b.Publish(ctx, broker.Message{Topic: "orchestrate", Payload: p}); err != nil {
		return err
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Run(sctx) }()
	select {
	case <-done:
		stop()
		return <-errc
	case err := <-errc:
		return fmt.Errorf("server stopped before the aggregate ran: %w", err)
	case <-ctx.Done():
		stop()
		<-errc
		return fmt.Errorf("the aggregate did not run: %w", ctx.Err())
	}
}

// lockedWriter serialises the handlers' writes.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
