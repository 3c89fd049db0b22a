package server_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/retry"
	"github.com/conveyor-jobs/conveyor/server"
)

type task struct {
	Prompt string `json:"prompt"`
}

// TestOutcomes runs one job per case through a server and the memory broker,
// driving the broker's clock through each retry delay, and checks where the
// job ends up.
func TestOutcomes(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name    string
		topic   string        // default "t"
		payload string        // default {"prompt":"p"}
		policy  *retry.Policy // nil: the server's default
		// handle returns the outcome of call n (1-based) of the handler.
		handle func(n int, j *job.Job) error
		// delays the job waits after each failed call, checked to the
		// nanosecond on the broker's clock.
		delays       []time.Duration
		wantAttempts []int        // Attempt seen by each handler call
		wantFailure  []string     // Failure.Error seen by each call ("" for none)
		wantDead     *job.Failure // nil: acked; else the dead letter's failure (Error is a prefix)
		wantDeadAt   int          // the dead letter's Attempt
	}{
		{
			name:         "nil acks",
			handle:       func(int, *job.Job) error { return nil },
			wantAttempts: []int{1},
			wantFailure:  []string{""},
		},
		{
			name: "retry in spends an attempt",
			handle: func(n int, _ *job.Job) error {
				if n == 1 {
					return job.RetryIn(time.Minute, errors.New("model busy"))
				}
				return nil
			},
			delays:       []time.Duration{time.Minute},
			wantAttempts: []int{1, 2},
			wantFailure:  []string{"", "model busy"},
		},
		{
			name: "snooze keeps the attempt",
			handle: func(n int, _ *job.Job) error {
				if n == 1 {
					return job.Snooze(30 * time.Second)
				}
				return nil
			},
			delays:       []time.Duration{30 * time.Second},
			wantAttempts: []int{1, 1},
			wantFailure:  []string{"", ""},
		},
		{
			name:         "permanent dead-letters at once",
			handle:       func(int, *job.Job) error { return job.Permanent(errors.New("bad input")) },
			wantAttempts: []int{1},
			wantFailure:  []string{""},
			wantDead:     &job.Failure{Error: "bad input", Reason: job.ReasonPermanent, Origin: "t"},
			wantDeadAt:   1,
		},
		{
			name:         "plain error follows the default schedule then dead-letters",
			policy:       &retry.Policy{RandomizationFactor: retry.NoJitter},
			handle:       func(int, *job.Job) error { return boom },
			delays:       []time.Duration{5 * time.Second, 15 * time.Second, 60 * time.Second},
			wantAttempts: []int{1, 2, 3, 4},
			wantFailure:  []string{"", "boom", "boom", "boom"},
			wantDead:     &job.Failure{Error: "boom", Reason: job.ReasonExhausted, Origin: "t"},
			wantDeadAt:   4,
		},
		{
			name:        "undecodable payload dead-letters at once",
			payload:     "{not json",
			handle:      func(int, *job.Job) error { t.Error("typed handler called with a bad payload"); return nil },
			wantFailure: nil,
			wantDead: &job.Failure{Error: `conveyor: cannot decode payload of topic "t"`, Reason: job.ReasonUndecodable,
				Origin: "t", Handler: "job.Typed[server_test.task]"},
			wantDeadAt: 1,
		},
		{
			name:     "unregistered topic dead-letters",
			topic:    "unknown",
			handle:   func(int, *job.Job) error { t.Error("handler called for an unregistered topic"); return nil },
			wantDead: &job.Failure{Error: `conveyor: no handler for topic "unknown"`, Reason: job.ReasonNoHandler, Origin: "unknown"},
		},
		{
			name:   "panic is retried and the worker survives",
			policy: &retry.Policy{RandomizationFactor: retry.NoJitter},
			handle: func(n int, _ *job.Job) error {
				if n == 1 {
					panic("kaboom")
				}
				return nil
			},
			delays:       []time.Duration{5 * time.Second},
			wantAttempts: []int{1, 2},
			wantFailure:  []string{"", "conveyor: handler panicked: kaboom"},
		},
		{
			name:         "panic with no retries left dead-letters as panic",
			policy:       &retry.Policy{MaxAttempts: 1},
			handle:       func(int, *job.Job) error { panic("kaboom") },
			wantAttempts: []int{1},
			wantFailure:  []string{""},
			wantDead:     &job.Failure{Error: "conveyor: handler panicked: kaboom", Reason: job.ReasonPanic, Origin: "t"},
			wantDeadAt:   1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			topic := tt.topic
			if topic == "" {
				topic = "t"
			}
			payload := tt.payload
			if payload == "" {
				payload = `{"prompt":"p"}`
			}
			clock := newFakeClock()
			b := newBroker(t, withClock(clock))

			var mu sync.Mutex
			var seen []job.Job
			mux := job.NewMux()
			mux.Handle("t", job.Typed(func(ctx context.Context, v task, j *job.Job) error {
				mu.Lock()
				seen = append(seen, *j)
				n := len(seen)
				mu.Unlock()
				return tt.handle(n, j)
			}))
			srv := start(t, b, mux, &server.Options{
				Concurrency: 1, // one worker: a later attempt proves it survived
				Topics:      []string{"t", "unknown"},
				Retry:       tt.policy,
			})
			id := publish(t, b, broker.Message{Topic: topic, ID: "job-1", Payload: []byte(payload)})

			calls := func() int { mu.Lock(); defer mu.Unlock(); return len(seen) }
			for i, d := range tt.delays {
				waitFor(t, fmt.Sprintf("call %d to be settled as delayed", i+1), func() bool {
					return calls() == i+1 && inspect(t, b, topic).Delayed == 1
				})
				clock.Advance(d - 1)
				if info := inspect(t, b, topic); info.Delayed != 1 {
					t.Fatalf("after call %d the job was due before %v: %+v", i+1, d, info)
				}
				clock.Advance(1)
			}

			if tt.wantDead == nil {
				waitFor(t, "the job to be acked", func() bool { return srv.Stats().Acked == 1 })
				if info := inspect(t, b, topic); info.Length != 0 || info.Delayed != 0 || info.DeadLetters != 0 {
					t.Fatalf("acked job still stored: %+v", info)
				}
			} else {
				waitFor(t, "the job to be dead-lettered", func() bool {
					return srv.Stats().DeadLettered == 1 && len(deadLetters(t, b, topic)) == 1
				})
				dl := deadLetters(t, b, topic)[0]
				f := dl.Job.Failure
				if dl.Job.ID != id || string(dl.Job.Payload) != payload || f == nil {
					t.Fatalf("dead letter %+v", dl.Job)
				}
				if tt.wantDeadAt != 0 && dl.Job.Attempt != tt.wantDeadAt {
					t.Errorf("dead letter attempt %d, want %d", dl.Job.Attempt, tt.wantDeadAt)
				}
				if !strings.HasPrefix(f.Error, tt.wantDead.Error) || f.Reason != tt.wantDead.Reason ||
					f.Origin != tt.wantDead.Origin || f.At.IsZero() ||
					(tt.wantDead.Handler != "" && f.Handler != tt.wantDead.Handler) {
					t.Errorf("failure %+v, want %+v", *f, *tt.wantDead)
				}
				if f.Reason == job.ReasonPanic {
					// The error text is one line naming the panic site; the
					// stack is kept apart.
					if strings.Contains(f.Error, "\n") || strings.Contains(f.Error, "goroutine") ||
						!strings.Contains(f.Error, " [at github.com/conveyor-jobs/conveyor/server_test.TestOutcomes.") || !strings.Contains(f.Error, "(outcome_test.go:") {
						t.Errorf("dead letter's error %q: want the panic value and the top frames, not the stack", f.Error)
					}
					if !strings.HasPrefix(f.Stack, "goroutine ") || !strings.Contains(f.Stack, "outcome_test.go") {
						t.Errorf("dead letter's stack %q: want the panicking goroutine's stack", f.Stack)
					}
				} else if f.Stack != "" {
					t.Errorf("dead letter of a failure that is no panic has a stack: %q", f.Stack)
				}
				if info := inspect(t, b, topic); info.Length != 0 || info.Delayed != 0 {
					t.Fatalf("dead-lettered job still in its topic: %+v", info)
				}
			}

			mu.Lock()
			defer mu.Unlock()
			if len(seen) != len(tt.wantAttempts) {
				t.Fatalf("handler called %d times, want %d", len(seen), len(tt.wantAttempts))
			}
			for i, j := range seen {
				if j.Attempt != tt.wantAttempts[i] {
					t.Errorf("call %d: attempt %d, want %d", i+1, j.Attempt, tt.wantAttempts[i])
				}
				got := ""
				if j.Failure != nil {
					got = j.Failure.Error
				}
				if !strings.HasPrefix(got, tt.wantFailure[i]) || (got == "") != (tt.wantFailure[i] == "") {
					t.Errorf("call %d: failure %q, want %q", i+1, got, tt.wantFailure[i])
				}
			}
		})
	}
}
