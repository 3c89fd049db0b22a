package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/middleware"
	"github.com/conveyor-jobs/conveyor/retry"
)

const s = time.Second

// outcomeAt runs a handler returning err through mw at the given attempt and
// classifies the result.
func outcomeAt(t *testing.T, mw job.Middleware, err error, attempt int) (job.Outcome, time.Duration, error) {
	t.Helper()
	got := run(t, mw, func(context.Context, *job.Job) error { return err }, &job.Job{ID: "j", Topic: "t", Attempt: attempt})
	o, d := job.Classify(got)
	return o, d, got
}

func TestRetryDelays(t *testing.T) {
	tests := []struct {
		name   string
		policy retry.Policy
		want   []time.Duration // delay after attempt 1, 2, …; then dead-letter
	}{
		{"default, middle of jitter", retry.Policy{Rand: fixed(0.5)}, []time.Duration{5 * s, 15 * s, 60 * s}},
		{"default, low end of jitter", retry.Policy{Rand: fixed(0)}, []time.Duration{4500 * time.Millisecond, 13500 * time.Millisecond, 54 * s}},
		{"default, high end of jitter", retry.Policy{Rand: fixed(1)}, []time.Duration{5500 * time.Millisecond, 16500 * time.Millisecond, 66 * s}},
		{"schedule, no jitter", retry.Policy{Schedule: []time.Duration{s, 2 * s}, RandomizationFactor: retry.NoJitter}, []time.Duration{s, 2 * s}},
		{"schedule repeats its last delay", retry.Policy{Schedule: []time.Duration{s, 2 * s}, MaxAttempts: 5, RandomizationFactor: retry.NoJitter}, []time.Duration{s, 2 * s, 2 * s, 2 * s}},
		{"exponential capped", retry.Policy{InitialInterval: s, Multiplier: 2, MaxInterval: 10 * s, MaxAttempts: 7, RandomizationFactor: retry.NoJitter},
			[]time.Duration{s, 2 * s, 4 * s, 8 * s, 10 * s, 10 * s}},
		{"exponential with jitter", retry.Policy{InitialInterval: s, Multiplier: 3, RandomizationFactor: 0.5, Rand: fixed(0)},
			[]time.Duration{500 * time.Millisecond, 1500 * time.Millisecond, 4500 * time.Millisecond}},
		{"exponential defaults from backoff", retry.Policy{InitialInterval: 500 * time.Millisecond, Rand: fixed(0.5)},
			[]time.Duration{500 * time.Millisecond, 750 * time.Millisecond, 1125 * time.Millisecond}},
		{"from backoff.ExponentialBackOff", withRand(retry.PolicyFromBackOff(&backoff.ExponentialBackOff{
			InitialInterval: 100 * time.Millisecond, Multiplier: 10, MaxInterval: 5 * s, RandomizationFactor: 0.2}, 5), fixed(1)),
			[]time.Duration{120 * time.Millisecond, 1200 * time.Millisecond, 6 * s, 6 * s}},
		{"one attempt never retries", retry.Policy{MaxAttempts: 1}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mw := middleware.Retry(tt.policy)
			if got := tt.policy.Attempts(); got != len(tt.want)+1 {
				t.Errorf("Attempts() = %d, want %d", got, len(tt.want)+1)
			}
			for i, want := range tt.want {
				attempt := i + 1
				if d := tt.policy.Delay(attempt); d != want {
					t.Errorf("Delay(%d) = %v, want %v", attempt, d, want)
				}
				o, d, err := outcomeAt(t, mw, errBoom, attempt)
				if o != job.OutcomeRetry || d != want {
					t.Errorf("attempt %d: %v %v, want retry %v", attempt, o, d, want)
				}
				if !errors.Is(err, errBoom) {
					t.Errorf("attempt %d: retry lost its cause: %v", attempt, err)
				}
			}
			last := len(tt.want) + 1
			for _, attempt := range []int{last, last + 1} { // and beyond: a redelivery may overshoot
				o, _, err := outcomeAt(t, mw, errBoom, attempt)
				if o != job.OutcomeDeadLetter || !errors.Is(err, job.ErrRetriesExhausted) || !errors.Is(err, errBoom) {
					t.Fatalf("attempt %d: %v %v, want dead-letter (exhausted, boom)", attempt, o, err)
				}
				var pe *job.PermanentError
				if !errors.As(err, &pe) || pe.Reason != job.ReasonExhausted {
					t.Fatalf("attempt %d: %#v, want reason %q", attempt, err, job.ReasonExhausted)
				}
			}
		})
	}
}

func withRand(p retry.Policy, r func() float64) retry.Policy {
	p.Rand = r
	return p
}

func TestRetryJitterStaysInRange(t *testing.T) {
	p := retry.Policy{} // real randomness
	for range 1000 {
		if d := p.Delay(2); d < 13500*time.Millisecond || d > 16500*time.Millisecond {
			t.Fatalf("Delay(2) = %v, outside 15s ± 10%%", d)
		}
	}
}

func TestRetryPassesOutcomesThrough(t *testing.T) {
	perm := job.Permanent(errBoom)
	retryIn := job.RetryIn(time.Minute, errBoom)
	snooze := job.Snooze(time.Second)
	for _, attempt := range []int{1, 4} {
		for _, err := range []error{nil, perm, retryIn, snooze} {
			_, _, got := outcomeAt(t, middleware.Retry(retry.Policy{}), err, attempt)
			if got != err {
				t.Errorf("attempt %d: %v became %v", attempt, err, got)
			}
		}
	}
}

func TestRetryIf(t *testing.T) {
	errBadInput := errors.New("bad input")
	mw := middleware.Retry(retry.Policy{
		RetryIf: func(err error) bool { return !errors.Is(err, errBadInput) },
		Rand:    fixed(0.5),
	})
	if o, d, _ := outcomeAt(t, mw, errBoom, 1); o != job.OutcomeRetry || d != 5*s {
		t.Errorf("retryable: %v %v", o, d)
	}
	o, _, err := outcomeAt(t, mw, fmt.Errorf("parse: %w", errBadInput), 1)
	var pe *job.PermanentError
	if o != job.OutcomeDeadLetter || !errors.As(err, &pe) || pe.Reason != job.ReasonPermanent || errors.Is(err, job.ErrRetriesExhausted) {
		t.Errorf("not retryable: %v %#v", o, err)
	}
}

func TestRetryPanicOnLastAttempt(t *testing.T) {
	mw := job.Chain(middleware.Retry(retry.Policy{}), middleware.Recover(nil))
	err := run(t, mw, func(context.Context, *job.Job) error { panic("kaput") }, &job.Job{Topic: "t", Attempt: 4})
	f := job.FailureOf(&job.Job{Topic: "t"}, err, job.ReasonError, time.Time{})
	if f.Reason != job.ReasonPanic {
		t.Fatalf("reason %q, want %q (%v)", f.Reason, job.ReasonPanic, err)
	}
	var p *job.PanicError
	if !errors.As(err, &p) || p.Value != "kaput" {
		t.Fatalf("panic lost: %v", err)
	}
}

func TestRetryAttemptZeroCountsAsFirst(t *testing.T) {
	if o, d, _ := outcomeAt(t, middleware.Retry(retry.Policy{Rand: fixed(0.5)}), errBoom, 0); o != job.OutcomeRetry || d != 5*s {
		t.Fatalf("attempt 0: %v %v, want retry 5s", o, d)
	}
}

func TestRetryPerTopic(t *testing.T) {
	fast := retry.Policy{Schedule: []time.Duration{time.Millisecond}, RandomizationFactor: retry.NoJitter}
	def := retry.Policy{Rand: fixed(0.5)}
	byMap := middleware.RetryByTopic(map[string]retry.Policy{"fast": fast}, def)
	byFunc := middleware.RetryFunc(func(topic string) retry.Policy {
		if topic == "fast" {
			return fast
		}
		return def
	})
	for name, mw := range map[string]job.Middleware{"map": byMap, "func": byFunc} {
		t.Run(name, func(t *testing.T) {
			tests := []struct {
				topic   string
				attempt int
				want    job.Outcome
				delay   time.Duration
			}{
				{"fast", 1, job.OutcomeRetry, time.Millisecond},
				{"fast", 2, job.OutcomeDeadLetter, 0},
				{"other", 1, job.OutcomeRetry, 5 * s},
				{"other", 2, job.OutcomeRetry, 15 * s},
				{"other", 4, job.OutcomeDeadLetter, 0},
			}
			for _, tt := range tests {
				got := run(t, mw, func(context.Context, *job.Job) error { return errBoom }, &job.Job{Topic: tt.topic, Attempt: tt.attempt})
				if o, d := job.Classify(got); o != tt.want || d != tt.delay {
					t.Errorf("%s attempt %d: %v %v, want %v %v", tt.topic, tt.attempt, o, d, tt.want, tt.delay)
				}
			}
		})
	}
}

func ExampleRetry() {
	// Exact delays for the example; leave Rand nil in production.
	policy := retry.Policy{Rand: func() float64 { return 0.5 }}
	h := middleware.Retry(policy)(job.HandlerFunc(func(context.Context, *job.Job) error {
		return errors.New("upstream 503")
	}))
	for attempt := 1; attempt <= 4; attempt++ {
		err := h.ProcessJob(context.Background(), &job.Job{Topic: "orchestrate", Attempt: attempt})
		outcome, delay := job.Classify(err)
		fmt.Println(attempt, outcome, delay, err)
	}
	// Output:
	// 1 retry 5s retry in 5s: upstream 503
	// 2 retry 15s retry in 15s: upstream 503
	// 3 retry 1m0s retry in 1m0s: upstream 503
	// 4 dead-letter 0s conveyor: retries exhausted after 4 attempts: upstream 503
}

// TestRetryJobMaxAttemptsWins gives jobs their own MaxAttempts, as their
// producer may: it wins over the policy's, below it and above it.
func TestRetryJobMaxAttemptsWins(t *testing.T) {
	tests := []struct {
		name   string
		policy retry.Policy
		job    job.Job
		want   job.Outcome
	}{
		{"fewer than the policy", retry.Policy{}, job.Job{Attempt: 2, MaxAttempts: 2}, job.OutcomeDeadLetter},
		{"more than the policy", retry.Policy{MaxAttempts: 2}, job.Job{Attempt: 5, MaxAttempts: 10}, job.OutcomeRetry},
		{"the job's last attempt", retry.Policy{MaxAttempts: 2}, job.Job{Attempt: 10, MaxAttempts: 10}, job.OutcomeDeadLetter},
		{"unset: the policy decides", retry.Policy{MaxAttempts: 2}, job.Job{Attempt: 2}, job.OutcomeDeadLetter},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := tt.job
			j.ID, j.Topic = "j", "t"
			err := run(t, middleware.Retry(tt.policy), func(context.Context, *job.Job) error { return errBoom }, &j)
			if o, _ := job.Classify(err); o != tt.want {
				t.Fatalf("outcome %v (%v), want %v", o, err, tt.want)
			}
		})
	}
}
