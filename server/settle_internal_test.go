package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/retry"
)

// settleRecorder is a broker that only records how deliveries are settled,
// for checking how the server classifies outcomes. Flow tests use the memory
// broker.
type settleRecorder struct {
	broker.Broker // nil: only the settle methods below are called
	mu            sync.Mutex
	calls         []settleCall
	fail          error // returned by every settle method when set
}

type settleCall struct {
	op      string
	delay   time.Duration
	failure job.Failure
}

func (r *settleRecorder) record(c settleCall) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, c)
	return r.fail
}

func (r *settleRecorder) Ack(_ context.Context, ds ...*broker.Delivery) error {
	return r.record(settleCall{op: "ack"})
}

func (r *settleRecorder) Retry(_ context.Context, _ *broker.Delivery, d time.Duration, f job.Failure) error {
	return r.record(settleCall{op: "retry", delay: d, failure: f})
}

func (r *settleRecorder) Snooze(_ context.Context, _ *broker.Delivery, d time.Duration) error {
	return r.record(settleCall{op: "snooze", delay: d})
}

func (r *settleRecorder) DeadLetter(_ context.Context, _ *broker.Delivery, f job.Failure) error {
	return r.record(settleCall{op: "dead-letter", failure: f})
}

func (r *settleRecorder) Lease() time.Duration { return 30 * time.Second }

func newSettleServer(t *testing.T, r *settleRecorder, h job.Handler, policy *retry.Policy) *Server {
	t.Helper()
	s, err := New(r, h, &Options{
		Topics: []string{"t"},
		Logger: slog.New(slog.DiscardHandler),
		Retry:  policy,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSettleClassification(t *testing.T) {
	boom := errors.New("boom")
	panicErr := &job.PanicError{Value: "kaboom", Stack: []byte("goroutine 1 [running]:")}
	tests := []struct {
		name    string
		err     error
		attempt int
		want    settleCall // failure.At is not compared
	}{
		{"nil acks", nil, 1, settleCall{op: "ack"}},
		{"retry in", job.RetryIn(time.Second, boom), 1,
			settleCall{op: "retry", delay: time.Second, failure: job.Failure{Error: "boom", Reason: job.ReasonError, Origin: "t"}}},
		{"retry in negative delay", job.RetryIn(-time.Second, boom), 1,
			settleCall{op: "retry", delay: 0, failure: job.Failure{Error: "boom", Reason: job.ReasonError, Origin: "t"}}},
		{"wrapped retry in", fmt.Errorf("outer: %w", job.RetryIn(time.Minute, boom)), 2,
			settleCall{op: "retry", delay: time.Minute, failure: job.Failure{Error: "outer: retry in 1m0s: boom", Reason: job.ReasonError, Origin: "t"}}},
		{"snooze", job.Snooze(3 * time.Second), 1, settleCall{op: "snooze", delay: 3 * time.Second}},
		{"permanent", job.Permanent(boom), 1,
			settleCall{op: "dead-letter", failure: job.Failure{Error: "boom", Reason: job.ReasonPermanent, Origin: "t"}}},
		{"permanent wins over retry", job.Permanent(job.RetryIn(time.Second, boom)), 1,
			settleCall{op: "dead-letter", failure: job.Failure{Error: "boom", Reason: job.ReasonPermanent, Origin: "t"}}},
		{"joined outcome", errors.Join(boom, job.Snooze(time.Second)), 1, settleCall{op: "snooze", delay: time.Second}},
		{"plain error first attempt", boom, 1,
			settleCall{op: "retry", delay: 5 * time.Second, failure: job.Failure{Error: "boom", Reason: job.ReasonError, Origin: "t"}}},
		{"plain error third attempt", boom, 3,
			settleCall{op: "retry", delay: 60 * time.Second, failure: job.Failure{Error: "boom", Reason: job.ReasonError, Origin: "t"}}},
		{"plain error last attempt", boom, 4,
			settleCall{op: "dead-letter", failure: job.Failure{Error: "boom", Reason: job.ReasonExhausted, Origin: "t"}}},
		{"panic retried", panicErr, 1,
			settleCall{op: "retry", delay: 5 * time.Second, failure: job.Failure{Error: panicErr.Error(), Reason: job.ReasonError, Origin: "t", Stack: string(panicErr.Stack)}}},
		{"panic on last attempt", panicErr, 4,
			settleCall{op: "dead-letter", failure: job.Failure{Error: panicErr.Error(), Reason: job.ReasonPanic, Origin: "t", Stack: string(panicErr.Stack)}}},
		{"exhausted by retry middleware", job.Permanent(fmt.Errorf("%w: boom", job.ErrRetriesExhausted)), 4,
			settleCall{op: "dead-letter", failure: job.Failure{Error: "conveyor: retries exhausted: boom", Reason: job.ReasonExhausted, Origin: "t"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &settleRecorder{}
			// The default schedule without its jitter, for exact delays.
			exact := &retry.Policy{RandomizationFactor: retry.NoJitter}
			s := newSettleServer(t, r, job.HandlerFunc(func(context.Context, *job.Job) error { return nil }), exact)
			d := &broker.Delivery{Job: job.Job{ID: "1", Topic: "t", Attempt: tt.attempt}}
			s.settle(context.Background(), d, tt.err)
			if tt.want.op == "ack" {
				if got, _ := s.acks.take(make([]*broker.Delivery, 0, 10)); len(got) != 1 || got[0] != d {
					t.Fatalf("queued for ack: %v, want [%p]", got, d)
				}
				if len(r.calls) != 0 {
					t.Fatalf("unexpected settle calls %+v", r.calls)
				}
				return
			}
			if len(r.calls) != 1 {
				t.Fatalf("settle calls = %+v, want one %s", r.calls, tt.want.op)
			}
			got := r.calls[0]
			if got.failure.At.IsZero() != (got.op == "snooze") {
				t.Errorf("failure time %v on %s", got.failure.At, got.op)
			}
			got.failure.At = time.Time{}
			if got != tt.want {
				t.Errorf("settled\n %+v\nwant\n %+v", got, tt.want)
			}
		})
	}
}

func TestSettleNamesMuxHandler(t *testing.T) {
	mux := job.NewMux()
	mux.HandleFunc("t", func(context.Context, *job.Job) error { return nil })
	r := &settleRecorder{}
	s := newSettleServer(t, r, mux, nil)
	s.settle(context.Background(), &broker.Delivery{Job: job.Job{Topic: "t", Attempt: 1}}, job.Permanent(errors.New("x")))
	if len(r.calls) != 1 || r.calls[0].failure.Handler != mux.HandlerName("t") || r.calls[0].failure.Handler == "" {
		t.Fatalf("calls %+v, want handler %q", r.calls, mux.HandlerName("t"))
	}
}

func TestSettleErrorsAreCounted(t *testing.T) {
	r := &settleRecorder{fail: errors.New("broker down")}
	s := newSettleServer(t, r, job.HandlerFunc(func(context.Context, *job.Job) error { return nil }), nil)
	for _, err := range []error{job.RetryIn(time.Second, nil), job.Snooze(time.Second), job.Permanent(nil), errors.New("plain")} {
		s.settle(context.Background(), &broker.Delivery{Job: job.Job{Topic: "t", Attempt: 1}}, err)
	}
	st := s.Stats()
	if st.SettleErrors != 4 || st.Retried != 0 || st.Snoozed != 0 || st.DeadLettered != 0 {
		t.Fatalf("stats %+v, want 4 settle errors and nothing settled", st)
	}
}

func TestSettleCustomPolicyNeverRetries(t *testing.T) {
	r := &settleRecorder{}
	s := newSettleServer(t, r, job.HandlerFunc(func(context.Context, *job.Job) error { return nil }), &retry.Policy{MaxAttempts: 1})
	s.settle(context.Background(), &broker.Delivery{Job: job.Job{Topic: "t", Attempt: 1}}, errors.New("plain"))
	if len(r.calls) != 1 || r.calls[0].op != "dead-letter" || r.calls[0].failure.Reason != job.ReasonExhausted {
		t.Fatalf("calls %+v", r.calls)
	}
}

func TestPanicErrorCarriesStack(t *testing.T) {
	s := newSettleServer(t, &settleRecorder{}, job.HandlerFunc(func(context.Context, *job.Job) error {
		panic("kaboom")
	}), nil)
	err := s.call(context.Background(), &job.Job{Topic: "t"})
	var pe *job.PanicError
	if !errors.As(err, &pe) || pe.Value != "kaboom" || !strings.Contains(string(pe.Stack), "goroutine") {
		t.Fatalf("err = %v", err)
	}
	if s.Stats().Panics != 1 {
		t.Fatalf("panics = %d", s.Stats().Panics)
	}
}
