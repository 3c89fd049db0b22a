package retry_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/retry"
)

var errBoom = errors.New("boom")

func TestDecide(t *testing.T) {
	exact := retry.Policy{RandomizationFactor: retry.NoJitter}
	tests := []struct {
		name       string
		policy     retry.Policy
		job        job.Job
		err        error
		want       job.Outcome
		delay      time.Duration
		wantReason string // for dead letters
	}{
		{"first failure", exact, job.Job{Attempt: 1}, errBoom, job.OutcomeRetry, 5 * time.Second, ""},
		{"attempt 0 counts as the first", exact, job.Job{}, errBoom, job.OutcomeRetry, 5 * time.Second, ""},
		{"third failure", exact, job.Job{Attempt: 3}, errBoom, job.OutcomeRetry, 60 * time.Second, ""},
		{"fourth failure exhausts the default", exact, job.Job{Attempt: 4}, errBoom, job.OutcomeDeadLetter, 0, job.ReasonExhausted},
		{"a panic on the last attempt", exact, job.Job{Attempt: 4}, fmt.Errorf("wrapped: %w", job.NewPanicError("boom")), job.OutcomeDeadLetter, 0, job.ReasonPanic},
		{"the job's MaxAttempts wins over a larger policy", exact, job.Job{Attempt: 2, MaxAttempts: 2}, errBoom, job.OutcomeDeadLetter, 0, job.ReasonExhausted},
		{"the job's MaxAttempts wins over a smaller policy", retry.Policy{MaxAttempts: 1}, job.Job{Attempt: 5, MaxAttempts: 10}, errBoom, job.OutcomeRetry, -1, ""},
		{"MaxAttempts 1 never retries", retry.Policy{MaxAttempts: 1}, job.Job{Attempt: 1}, errBoom, job.OutcomeDeadLetter, 0, job.ReasonExhausted},
		{"RetryIf rejects", retry.Policy{RetryIf: func(error) bool { return false }}, job.Job{Attempt: 1}, errBoom, job.OutcomeDeadLetter, 0, job.ReasonPermanent},
		{"attempt at the bound", exact, job.Job{Attempt: job.MaxAttempt}, errBoom, job.OutcomeDeadLetter, 0, job.ReasonExhausted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.policy.Decide(&tt.job, tt.err)
			o, d := job.Classify(got)
			if o != tt.want || (tt.delay >= 0 && d != tt.delay) {
				t.Fatalf("Decide = %v (%v, %v), want (%v, %v)", got, o, d, tt.want, tt.delay)
			}
			if !errors.Is(got, retry.ErrDecided) {
				t.Errorf("Decide = %v, which does not match ErrDecided", got)
			}
			if !errors.Is(got, tt.err) {
				t.Errorf("Decide = %v, which does not wrap the handler's error", got)
			}
			var pe *job.PermanentError
			if tt.want == job.OutcomeDeadLetter && (!errors.As(got, &pe) || pe.Reason != tt.wantReason) {
				t.Errorf("Decide = %v, want a permanent error with reason %q", got, tt.wantReason)
			}
		})
	}
}

func TestDecidePassesOutcomesThrough(t *testing.T) {
	for _, err := range []error{nil, job.Permanent(errBoom), job.RetryIn(time.Minute, errBoom), job.Snooze(time.Second)} {
		got := retry.Policy{}.Decide(&job.Job{Attempt: 9}, err)
		if got != err {
			t.Errorf("%v became %v", err, got)
		}
		if errors.Is(got, retry.ErrDecided) {
			t.Errorf("%v, chosen by the handler, matches ErrDecided", err)
		}
	}
}

func TestDefaults(t *testing.T) {
	p := retry.Policy{}.WithDefaults()
	if p.Attempts() != retry.DefaultMaxAttempts || len(p.Schedule) != retry.DefaultMaxAttempts-1 || p.RandomizationFactor != retry.DefaultScheduleJitter {
		t.Fatalf("default policy %+v", p)
	}
	want := []time.Duration{5 * time.Second, 15 * time.Second, 60 * time.Second}
	for i, d := range retry.DefaultSchedule() {
		if d != want[i] {
			t.Errorf("DefaultSchedule()[%d] = %v, want %v", i, d, want[i])
		}
	}
}

func ExamplePolicy_Delay() {
	p := retry.Policy{
		InitialInterval:     time.Second,
		Multiplier:          2,
		MaxInterval:         time.Minute,
		RandomizationFactor: retry.NoJitter,
		MaxAttempts:         10,
	}
	for attempt := 1; attempt < p.Attempts(); attempt++ {
		fmt.Print(p.Delay(attempt), " ")
	}
	fmt.Println()
	// Output:
	// 1s 2s 4s 8s 16s 32s 1m0s 1m0s 1m0s
}
