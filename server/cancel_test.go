package server_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/middleware"
	"github.com/conveyor-jobs/conveyor/retry"
	"github.com/conveyor-jobs/conveyor/server"
)

// cancelling returns a handler that signals started, waits for its context
// to end, records the cause and returns what ret makes of the context.
func cancelling(started chan<- string, cause *atomic.Pointer[error], ret func(ctx context.Context) error) job.HandlerFunc {
	return func(ctx context.Context, j *job.Job) error {
		started <- j.ID
		<-ctx.Done()
		c := context.Cause(ctx)
		cause.Store(&c)
		return ret(ctx)
	}
}

// TestCancelRunningJob: a job cancelled while its handler runs has its
// context ended with job.ErrCancelled, and is dead-lettered with reason
// cancelled whatever the handler returns but nil, the retry policy
// (server's or middleware's) notwithstanding.
func TestCancelRunningJob(t *testing.T) {
	cases := []struct {
		name string
		ret  func(ctx context.Context) error
		mw   bool
	}{
		{"ctx error", func(ctx context.Context) error { return ctx.Err() }, false},
		{"plain error with retries left", func(context.Context) error { return errors.New("stopped") }, false},
		{"retry outcome", func(ctx context.Context) error { return job.RetryIn(time.Millisecond, ctx.Err()) }, false},
		{"snooze outcome", func(context.Context) error { return job.Snooze(time.Millisecond) }, false},
		{"retry middleware", func(ctx context.Context) error { return ctx.Err() }, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := newBroker(t)
			started := make(chan string, 1)
			var cause atomic.Pointer[error]
			var h job.Handler = cancelling(started, &cause, tc.ret)
			if tc.mw {
				h = middleware.Retry(retry.Policy{MaxAttempts: 5})(h)
			}
			r := start(t, b, h, &server.Options{Topics: []string{"t"}, Concurrency: 2, CancelInterval: 5 * time.Millisecond})
			id := publish(t, b, broker.Message{Topic: "t", Payload: []byte("x"), ID: "long"})
			<-started
			res, err := b.Cancel(context.Background(), "t", id)
			if err != nil || res != broker.CancelRequested {
				t.Fatalf("Cancel = %v, %v; want running", res, err)
			}
			waitFor(t, "the cancelled job dead-lettered", func() bool { return len(deadLetters(t, b, "t")) == 1 })
			if c := cause.Load(); c == nil || !errors.Is(*c, job.ErrCancelled) {
				t.Errorf("context.Cause = %v, want job.ErrCancelled", c)
			}
			dl := deadLetters(t, b, "t")[0]
			if dl.Job.ID != "long" || dl.Job.Failure == nil || dl.Job.Failure.Reason != job.ReasonCancelled || dl.Job.Failure.Origin != "t" {
				t.Fatalf("dead letter = %+v, want job long with reason cancelled", dl.Job)
			}
			if info := inspect(t, b, "t"); info.Length != 0 || info.Delayed != 0 {
				t.Errorf("topic after cancel: %+v, want empty (no retry)", info)
			}
			st := r.Stats()
			if st.Cancelled != 1 || st.DeadLettered != 1 || st.Retried != 0 || st.Snoozed != 0 {
				t.Errorf("stats = %+v, want 1 cancelled and dead-lettered, no retry or snooze", st)
			}
		})
	}
}

// TestCancelFinishedAnyway: a handler that returns nil after its job was
// cancelled did the work: the job is acknowledged, not dead-lettered.
func TestCancelFinishedAnyway(t *testing.T) {
	b := newBroker(t)
	started := make(chan string, 1)
	var cause atomic.Pointer[error]
	logs := &logRecorder{}
	r := start(t, b, cancelling(started, &cause, func(context.Context) error { return nil }),
		&server.Options{Topics: []string{"t"}, CancelInterval: 5 * time.Millisecond, Logger: slogNew(logs)})
	publish(t, b, broker.Message{Topic: "t", Payload: []byte("x"), ID: "done"})
	<-started
	if _, err := b.Cancel(context.Background(), "t", "done"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the job acknowledged", func() bool { return r.Stats().Acked == 1 })
	if dls := deadLetters(t, b, "t"); len(dls) != 0 {
		t.Fatalf("dead letters = %+v, want none", dls)
	}
	if n := logs.count("conveyor: job finished before its cancel reached it"); n != 1 {
		t.Errorf("%d log lines say the job finished before its cancel, want 1", n)
	}
	if _, err := b.Cancel(context.Background(), "t", "done"); !errors.Is(err, broker.ErrNotFound) {
		t.Errorf("Cancel after the ack = %v, want ErrNotFound", err)
	}
}

// TestCancelOnlyTheCancelledJob: the other jobs running beside a cancelled
// one keep their context, and the worker's next job runs normally.
func TestCancelOnlyTheCancelledJob(t *testing.T) {
	b := newBroker(t)
	started := make(chan string, 2)
	release := make(chan struct{})
	h := job.HandlerFunc(func(ctx context.Context, j *job.Job) error {
		started <- j.ID
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-release:
			return nil
		}
	})
	r := start(t, b, h, &server.Options{Topics: []string{"t"}, Concurrency: 2, CancelInterval: 5 * time.Millisecond})
	publish(t, b, broker.Message{Topic: "t", Payload: []byte("a"), ID: "a"})
	publish(t, b, broker.Message{Topic: "t", Payload: []byte("b"), ID: "b"})
	<-started
	<-started
	if _, err := b.Cancel(context.Background(), "t", "a"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "job a dead-lettered", func() bool { return r.Stats().Cancelled == 1 })
	publish(t, b, broker.Message{Topic: "t", Payload: []byte("c"), ID: "c"})
	<-started
	close(release)
	waitFor(t, "jobs b and c acknowledged", func() bool { return r.Stats().Acked == 2 })
	if dls := deadLetters(t, b, "t"); len(dls) != 1 || dls[0].Job.ID != "a" {
		t.Fatalf("dead letters = %+v, want job a only", dls)
	}
}

// countingWatcher counts CancelRequested calls.
type countingWatcher struct {
	broker.Broker
	w     broker.CancelWatcher
	calls atomic.Int64
}

func (c *countingWatcher) CancelRequested(ctx context.Context, ds ...*broker.Delivery) ([]string, error) {
	c.calls.Add(1)
	return c.w.CancelRequested(ctx, ds...)
}

// TestCancelChecksOnlyWhileHolding: the server asks for cancel requests
// only while it holds jobs, one call per interval for all of them.
func TestCancelChecksOnlyWhileHolding(t *testing.T) {
	mb := newBroker(t)
	b := &countingWatcher{Broker: mb, w: mb}
	started := make(chan string, 3)
	release := make(chan struct{})
	h := job.HandlerFunc(func(ctx context.Context, j *job.Job) error {
		started <- j.ID
		<-release
		return nil
	})
	r := start(t, b, h, &server.Options{Topics: []string{"t"}, Concurrency: 3, CancelInterval: time.Millisecond})
	fetches := func(n int64) {
		t.Helper()
		from := r.Stats().Fetches
		waitFor(t, "more fetches", func() bool { return r.Stats().Fetches >= from+n })
	}
	fetches(20)
	if n := b.calls.Load(); n != 0 {
		t.Fatalf("%d CancelRequested calls while idle, want 0", n)
	}
	for _, id := range []string{"a", "b", "c"} {
		publish(t, b, broker.Message{Topic: "t", Payload: []byte(id), ID: id})
	}
	<-started
	<-started
	<-started
	waitFor(t, "cancel checks while holding jobs", func() bool { return b.calls.Load() >= 5 })
	close(release)
	waitFor(t, "jobs acknowledged", func() bool { return r.Stats().Acked == 3 })
	fetches(20) // a check that saw the jobs before they ended has returned
	after := b.calls.Load()
	fetches(20)
	if n := b.calls.Load(); n != after {
		t.Fatalf("%d CancelRequested calls after the jobs ended, want none", n-after)
	}
	if st := r.Stats(); st.CancelChecks != after {
		t.Errorf("Stats.CancelChecks = %d, want %d", st.CancelChecks, after)
	}
}
