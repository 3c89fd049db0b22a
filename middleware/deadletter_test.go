package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/middleware"
	"github.com/conveyor-jobs/conveyor/retry"
)

func handlerNamed(name string) *middleware.DeadLetterOptions {
	return &middleware.DeadLetterOptions{HandlerName: func(*job.Job) string { return name }}
}

func TestDeadLetterFillsPermanentErrors(t *testing.T) {
	shared := &job.PermanentError{Err: errBoom}
	tests := []struct {
		name        string
		err         error
		wantReason  string
		wantHandler string
	}{
		{"bare permanent", shared, job.ReasonPermanent, "summarize"},
		{"wrapped permanent", fmt.Errorf("step 2: %w", job.Permanent(errBoom)), job.ReasonPermanent, "summarize"},
		{"keeps own reason and handler", &job.PermanentError{Err: errBoom, Reason: job.ReasonUndecodable, Handler: "job.Typed[T]"}, job.ReasonUndecodable, "job.Typed[T]"},
		{"exhausted", &job.PermanentError{Err: fmt.Errorf("%w: %w", job.ErrRetriesExhausted, errBoom)}, job.ReasonExhausted, "summarize"},
		{"exhausted panic", &job.PermanentError{Err: fmt.Errorf("%w: %w", job.ErrRetriesExhausted, &job.PanicError{Value: 1})}, job.ReasonPanic, "summarize"},
		{"decode error", job.Permanent(&job.DecodeError{Err: errBoom}), job.ReasonUndecodable, "summarize"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := *shared
			_, _, got := outcomeAt(t, middleware.DeadLetter(handlerNamed("summarize")), tt.err, 1)
			if *shared != before {
				t.Fatal("DeadLetter modified the handler's error value")
			}
			var pe *job.PermanentError
			if !errors.As(got, &pe) || pe.Reason != tt.wantReason || pe.Handler != tt.wantHandler {
				t.Fatalf("got %#v, want reason %q handler %q", got, tt.wantReason, tt.wantHandler)
			}
			if got.Error() != tt.err.Error() {
				t.Errorf("text changed: %q → %q", tt.err, got)
			}
			if !errors.Is(got, errBoom) && !errors.Is(got, job.ErrRetriesExhausted) {
				t.Error("cause lost")
			}
			f := job.FailureOf(&job.Job{Topic: "t"}, got, job.ReasonError, time.Time{})
			if f.Reason != tt.wantReason || f.Handler != tt.wantHandler {
				t.Errorf("FailureOf = %+v", f)
			}
		})
	}
}

func TestDeadLetterPassesOtherOutcomes(t *testing.T) {
	retry, snooze := job.RetryIn(time.Second, errBoom), job.Snooze(time.Second)
	for _, err := range []error{nil, retry, snooze} {
		if _, _, got := outcomeAt(t, middleware.DeadLetter(handlerNamed("h")), err, 1); got != err {
			t.Errorf("%v became %v", err, got)
		}
	}
	// A plain error keeps its outcome, text and identity.
	_, _, got := outcomeAt(t, middleware.DeadLetter(handlerNamed("h")), errBoom, 1)
	if o, _ := job.Classify(got); o != job.OutcomeFail || got.Error() != errBoom.Error() || !errors.Is(got, errBoom) {
		t.Errorf("plain error became %v (%#v)", o, got)
	}
	// Without options, nothing is changed at all.
	if _, _, got := outcomeAt(t, middleware.DeadLetter(nil), errBoom, 1); got != errBoom {
		t.Errorf("plain error became %#v", got)
	}
}

// TestRetryAndDeadLetterOrderDoesNotMatter runs the same failures through
// DeadLetter outside Retry and inside it, at every attempt, and requires the
// same outcome, delay, error text and dead-letter record.
func TestRetryAndDeadLetterOrderDoesNotMatter(t *testing.T) {
	policy := retry.Policy{Rand: fixed(0.3), RetryIf: func(err error) bool { return !errors.Is(err, errNotRetryable) }}
	dl := middleware.DeadLetter(handlerNamed("summarizer"))
	orders := map[string]job.Middleware{
		"deadletter outside retry": job.Chain(dl, middleware.Retry(policy), middleware.Recover(nil)),
		"deadletter inside retry":  job.Chain(middleware.Retry(policy), dl, middleware.Recover(nil)),
	}
	handlers := map[string]job.HandlerFunc{
		"plain error":   func(context.Context, *job.Job) error { return errBoom },
		"panic":         func(context.Context, *job.Job) error { panic("kaput") },
		"permanent":     func(context.Context, *job.Job) error { return job.Permanent(errBoom) },
		"not retryable": func(context.Context, *job.Job) error { return errNotRetryable },
		"snooze":        func(context.Context, *job.Job) error { return job.Snooze(time.Second) },
		"explicit retry": func(context.Context, *job.Job) error {
			return job.RetryIn(time.Minute, errBoom)
		},
		"ack": func(context.Context, *job.Job) error { return nil },
	}
	type result struct {
		outcome job.Outcome
		delay   time.Duration
		text    string
		failure job.Failure
	}
	for hname, h := range handlers {
		for attempt := 1; attempt <= 5; attempt++ {
			results := map[string]result{}
			for oname, mw := range orders {
				j := &job.Job{ID: "j", Topic: "summarize", Attempt: attempt}
				err := run(t, mw, h, j)
				var r result
				r.outcome, r.delay = job.Classify(err)
				if err != nil {
					r.text = err.Error()
					r.failure = job.FailureOf(j, err, job.ReasonError, time.Time{})
					// The stack shows the middleware order; it is compared
					// by its presence only.
					if (r.failure.Stack != "") != (hname == "panic") {
						t.Errorf("%s: failure stack %q", hname, r.failure.Stack)
					}
					r.failure.Stack = ""
				}
				results[oname] = r
			}
			a, b := results["deadletter outside retry"], results["deadletter inside retry"]
			if a != b {
				t.Errorf("%s, attempt %d: orders differ:\n outside: %+v\n inside:  %+v", hname, attempt, a, b)
			}
			if hname == "plain error" || hname == "panic" {
				want := job.OutcomeRetry
				if attempt >= 4 {
					want = job.OutcomeDeadLetter
				}
				if a.outcome != want {
					t.Errorf("%s, attempt %d: %v, want %v", hname, attempt, a.outcome, want)
				}
				if want == job.OutcomeDeadLetter && a.failure.Handler != "summarizer" {
					t.Errorf("%s, attempt %d: dead letter without handler name: %+v", hname, attempt, a.failure)
				}
			}
		}
	}
}

var errNotRetryable = errors.New("not retryable")

func ExampleDeadLetter() {
	mux := job.NewMux()
	mux.Use(
		middleware.DeadLetter(&middleware.DeadLetterOptions{
			HandlerName: func(j *job.Job) string { return mux.HandlerName(j.Topic) },
		}),
		middleware.Retry(retry.Policy{}),
	)
	mux.Handle("charge", job.HandlerFunc(func(context.Context, *job.Job) error {
		return errors.New("card declined")
	}))
	j := &job.Job{ID: "7", Topic: "charge", Attempt: 4} // the last attempt
	err := mux.ProcessJob(context.Background(), j)
	f := job.FailureOf(j, err, job.ReasonError, time.Time{})
	fmt.Println(job.DeadLetterTopic(j.Topic))
	fmt.Println(f.Reason)
	fmt.Println(f.Error)
	// Output:
	// charge.dlq
	// exhausted
	// conveyor: retries exhausted after 4 attempts: card declined
}
