package workflow_test

import (
	"context"
	"fmt"
	"slices"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/memory"
	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/server"
	"github.com/conveyor-jobs/conveyor/workflow"
)

// Fan-out, fan-in: an orchestrate job opens a batch of steps; when every
// step has ended, the aggregate callback runs once and reads the steps'
// results.
func Example() {
	ctx, stop := context.WithCancel(context.Background())
	b := memory.New(nil)
	defer b.Close()
	wf, err := workflow.New(b)
	if err != nil {
		panic(err)
	}
	done := make(chan string, 1)

	mux := job.NewMux()
	mux.HandleFunc("orchestrate", func(ctx context.Context, j *job.Job) error {
		_, err := wf.OpenBatch(ctx, workflow.Batch{
			ID: "plan-" + j.ID, // stable: a retried orchestrate opens the same batch
			Members: []broker.Message{
				{Topic: "step", Payload: []byte(`"research"`)},
				{Topic: "step", Payload: []byte(`"draft"`)},
			},
			Callback: &broker.Message{Topic: "aggregate"},
		})
		return err
	})
	mux.Handle("step", job.TypedResult(func(ctx context.Context, name string, j *job.Job) (string, error) {
		return name + " done", nil
	}))
	mux.HandleFunc("aggregate", func(ctx context.Context, j *job.Job) error {
		results, _, err := wf.Results(ctx, j)
		if err != nil {
			return err
		}
		var out []string
		for _, r := range results {
			out = append(out, string(r))
		}
		slices.Sort(out)
		c := workflow.CountsOf(j)
		done <- fmt.Sprintf("%d of %d succeeded: %v", c.Succeeded, c.Total, out)
		return nil
	})

	srv, err := server.New(b, mux, nil)
	if err != nil {
		panic(err)
	}
	ran := make(chan error, 1)
	go func() { ran <- srv.Run(ctx) }()
	if _, err := b.Publish(ctx, broker.Message{Topic: "orchestrate", ID: "launch", Payload: []byte(`{}`)}); err != nil {
		panic(err)
	}
	fmt.Println(<-done)
	stop()
	fmt.Println(<-ran)
	// Output:
	// 2 of 2 succeeded: ["draft done" "research done"]
	// <nil>
}

// A chain runs its links one after another; each reads the result of the
// one before.
func ExampleClient_Chain() {
	ctx, stop := context.WithCancel(context.Background())
	b := memory.New(nil)
	defer b.Close()
	wf, err := workflow.New(b)
	if err != nil {
		panic(err)
	}
	done := make(chan string, 1)

	mux := job.NewMux()
	mux.HandleFunc("plan", func(ctx context.Context, j *job.Job) error {
		return job.SetResult(ctx, "three steps")
	})
	mux.HandleFunc("report", func(ctx context.Context, j *job.Job) error {
		prev, err := wf.Previous(ctx, j)
		if err != nil {
			return err
		}
		done <- "report on " + string(prev)
		return nil
	})
	srv, err := server.New(b, mux, nil)
	if err != nil {
		panic(err)
	}
	ran := make(chan error, 1)
	go func() { ran <- srv.Run(ctx) }()
	if _, err := wf.Chain(ctx, broker.Message{Topic: "plan"}, broker.Message{Topic: "report"}); err != nil {
		panic(err)
	}
	fmt.Println(<-done)
	stop()
	fmt.Println(<-ran)
	// Output:
	// report on "three steps"
	// <nil>
}
