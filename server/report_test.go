package server_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/memory"
	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/server"
)

// jobState polls b until the job id of topic is in state want, and returns
// it.
func jobState(t *testing.T, b *memory.Broker, topic, id, want string) *broker.JobState {
	t.Helper()
	var js *broker.JobState
	waitFor(t, "job "+id+" to be "+want, func() bool {
		var err error
		js, err = b.JobState(context.Background(), topic, id)
		return err == nil && js.State == want
	})
	return js
}

// TestResultStored: the result a handler records is stored with the job
// when it succeeds; the result of a failed attempt is discarded, so a job
// retried and then succeeding keeps the result of the attempt that
// succeeded.
func TestResultStored(t *testing.T) {
	b := newBroker(t)
	h := job.HandlerFunc(func(ctx context.Context, j *job.Job) error {
		if err := job.SetResult(ctx, map[string]any{"attempt": j.Attempt, "topic": j.Topic}); err != nil {
			return job.Permanent(err)
		}
		if j.Attempt == 1 {
			return job.RetryIn(0, errors.New("flaky"))
		}
		return nil
	})
	start(t, b, h, &server.Options{Topics: []string{"steps"}})
	id := publish(t, b, broker.Message{Topic: "steps", Payload: []byte(`{}`)})
	js := jobState(t, b, "steps", id, broker.StateSucceeded)
	if string(js.Result) != `{"attempt":2,"topic":"steps"}` || js.Attempt != 2 {
		t.Fatalf("result %s of attempt %d; want the second attempt's", js.Result, js.Attempt)
	}
}

// TestResultTyped runs a job.TypedResult handler on a server.
func TestResultTyped(t *testing.T) {
	b := newBroker(t)
	type plan struct {
		Goal string `json:"goal"`
	}
	type steps struct {
		Steps []string `json:"steps"`
	}
	h := job.TypedResult(func(ctx context.Context, p plan, j *job.Job) (steps, error) {
		return steps{Steps: []string{"research " + p.Goal, "write"}}, nil
	})
	start(t, b, h, &server.Options{Topics: []string{"orchestrate"}})
	id := publish(t, b, broker.Message{Topic: "orchestrate", Payload: []byte(`{"goal":"refunds"}`)})
	js := jobState(t, b, "orchestrate", id, broker.StateSucceeded)
	if string(js.Result) != `{"steps":["research refunds","write"]}` {
		t.Fatalf("result %s", js.Result)
	}
}

// TestResultNotKeptWithoutOne: a job that records no result is not kept
// once acknowledged, and a dead-lettered job's result is discarded.
func TestResultNotKeptWithoutOne(t *testing.T) {
	b := newBroker(t)
	var done atomic.Int64
	h := job.HandlerFunc(func(ctx context.Context, j *job.Job) error {
		defer done.Add(1)
		if string(j.Payload) == "fail" {
			_ = job.SetResult(ctx, "partial")
			return job.Permanent(errors.New("bad input"))
		}
		return nil
	})
	start(t, b, h, &server.Options{Topics: []string{"steps"}})
	plain := publish(t, b, broker.Message{Topic: "steps", Payload: []byte("ok")})
	failed := publish(t, b, broker.Message{Topic: "steps", Payload: []byte("fail")})
	js := jobState(t, b, "steps", failed, broker.StateDead)
	if js.Result != nil {
		t.Fatalf("dead job has result %q", js.Result)
	}
	waitFor(t, "both jobs to run", func() bool { return done.Load() == 2 })
	waitFor(t, "the plain job to be settled", func() bool {
		_, err := b.JobState(context.Background(), "steps", plain)
		return errors.Is(err, broker.ErrNotFound)
	})
}

// TestProgressReachesBroker: progress a handler reports is written to the
// broker while the job runs, by the server's flush (at most once a second).
func TestProgressReachesBroker(t *testing.T) {
	b := newBroker(t)
	release := make(chan struct{})
	h := job.HandlerFunc(func(ctx context.Context, j *job.Job) error {
		for i := range 10 {
			job.Progress(ctx, float64(i+1)/10, "step")
		}
		job.Progress(ctx, 0.5, "halfway")
		<-release
		return job.SetResult(ctx, "done")
	})
	start(t, b, h, &server.Options{Topics: []string{"long"}})
	id := publish(t, b, broker.Message{Topic: "long", Payload: []byte(`{}`)})
	waitFor(t, "the progress to be written", func() bool {
		js, err := b.JobState(context.Background(), "long", id)
		return err == nil && js.State == broker.StateRunning && js.Progress != nil
	})
	js, err := b.JobState(context.Background(), "long", id)
	if err != nil {
		t.Fatal(err)
	}
	if js.Progress.Fraction != 0.5 || js.Progress.Message != "halfway" {
		t.Fatalf("progress %+v, want the latest report", js.Progress)
	}
	close(release)
	js = jobState(t, b, "long", id, broker.StateSucceeded)
	if string(js.Result) != `"done"` || js.Progress != nil {
		t.Fatalf("result %s, progress %+v", js.Result, js.Progress)
	}
}
