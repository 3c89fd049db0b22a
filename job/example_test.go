package job_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/conveyor-jobs/conveyor/job"
)

func ExampleMux() {
	type Task struct {
		Prompt string `json:"prompt"`
	}
	mux := job.NewMux()
	mux.Handle("orchestrate", job.Typed(func(ctx context.Context, t Task, j *job.Job) error {
		fmt.Printf("attempt %d: %s\n", j.Attempt, t.Prompt)
		return nil
	}))

	_ = mux.ProcessJob(context.Background(), &job.Job{Topic: "orchestrate", Attempt: 1, Payload: []byte(`{"prompt":"plan a trip"}`)})
	err := mux.ProcessJob(context.Background(), &job.Job{Topic: "orchestrate", Payload: []byte(`{oops`)})
	outcome, _ := job.Classify(err)
	fmt.Println(outcome)
	// Output:
	// attempt 1: plan a trip
	// dead-letter
}

func ExampleChain() {
	logged := func(name string) job.Middleware {
		return func(next job.Handler) job.Handler {
			return job.HandlerFunc(func(ctx context.Context, j *job.Job) error {
				fmt.Println("enter", name)
				return next.ProcessJob(ctx, j)
			})
		}
	}
	h := job.Chain(logged("outer"), logged("inner"))(job.HandlerFunc(func(context.Context, *job.Job) error {
		fmt.Println("handler")
		return nil
	}))
	_ = h.ProcessJob(context.Background(), &job.Job{})
	// Output:
	// enter outer
	// enter inner
	// handler
}

func ExampleClassify() {
	for _, err := range []error{
		nil,
		errors.New("flaky upstream"),
		job.RetryIn(30*time.Second, errors.New("429 from the model API")),
		job.Snooze(time.Second),
		job.Permanent(errors.New("prompt rejected")),
	} {
		o, d := job.Classify(err)
		fmt.Println(o, d)
	}
	// Output:
	// ack 0s
	// fail 0s
	// retry 30s
	// snooze 1s
	// dead-letter 0s
}
