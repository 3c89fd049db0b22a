package server_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/memory"
	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/server"
)

// Plan is the result of an "orchestrate" job.
type Plan struct {
	Steps []string `json:"steps"`
}

// A step that returns its result: job.TypedResult records it when the
// handler succeeds, and the broker keeps it with the job, for whoever waits
// on the step (broker.JobReader) to read by the job's ID.
func Example_results() {
	ctx := context.Background()
	b := memory.New(nil)
	defer b.Close()

	h := job.TypedResult(func(ctx context.Context, p Prompt, j *job.Job) (Plan, error) {
		job.Progress(ctx, 0.5, "planning")
		return Plan{Steps: []string{"research " + p.Text, "write"}}, nil
	})
	srv, err := server.New(b, h, &server.Options{Topics: []string{"orchestrate"}})
	if err != nil {
		panic(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	result := make(chan error, 1)
	go func() { result <- srv.Run(runCtx) }()

	id, err := b.Publish(ctx, broker.Message{Topic: "orchestrate", Payload: []byte(`{"text":"refunds"}`)})
	if err != nil {
		panic(err)
	}
	var js *broker.JobState
	for js == nil || js.State != broker.StateSucceeded {
		time.Sleep(time.Millisecond) // a real caller polls less often
		if js, err = b.JobState(ctx, "orchestrate", id); err != nil && !errors.Is(err, broker.ErrNotFound) {
			panic(err)
		}
	}
	fmt.Printf("%s after %d attempt: %s\n", js.State, js.Attempt, js.Result)
	stop()
	fmt.Println(<-result)
	// Output:
	// succeeded after 1 attempt: {"steps":["research refunds","write"]}
	// <nil>
}
