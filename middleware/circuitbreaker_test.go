package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/middleware"
)

// transitions records state changes reported to OnStateChange.
type transitions struct {
	mu  sync.Mutex
	got []string
}

func (tr *transitions) hook(key string, from, to gobreaker.State) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.got = append(tr.got, fmt.Sprintf("%s: %s->%s", key, from, to))
}

func (tr *transitions) list() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return append([]string(nil), tr.got...)
}

var quietLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

// tripAfter2 opens after 2 consecutive failures and half-opens after timeout.
func tripAfter2(timeout time.Duration, tr *transitions) *middleware.BreakerOptions {
	return &middleware.BreakerOptions{
		Settings: gobreaker.Settings{
			Timeout:     timeout,
			ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 2 },
		},
		OnStateChange: tr.hook,
		Logger:        quietLogger,
	}
}

func TestCircuitBreakerOpensAndSnoozes(t *testing.T) {
	var tr transitions
	b := middleware.NewBreakers(tripAfter2(time.Hour, &tr))
	calls := 0
	fail := errors.New("upstream down")
	h := b.Middleware()(job.HandlerFunc(func(_ context.Context, j *job.Job) error {
		calls++
		if j.Header("ok") != "" {
			return nil
		}
		return fail
	}))
	process := func(topic string, ok bool) error {
		j := &job.Job{Topic: topic, Attempt: 1}
		if ok {
			j.Headers = map[string]string{"ok": "1"}
		}
		return h.ProcessJob(context.Background(), j)
	}

	for i := range 2 {
		if err := process("llm", false); err != fail {
			t.Fatalf("failure %d: %v, want the handler's error unchanged", i, err)
		}
	}
	if b.State("llm") != gobreaker.StateOpen {
		t.Fatalf("state %v after 2 failures, want open", b.State("llm"))
	}
	before := calls
	err := process("llm", true)
	o, d := job.Classify(err)
	if o != job.OutcomeSnooze || !errors.Is(err, middleware.ErrCircuitOpen) || calls != before {
		t.Fatalf("open breaker: %v %v ran=%v, want a circuit-open snooze without running", o, err, calls != before)
	}
	if d <= 59*time.Minute || d > time.Hour {
		t.Fatalf("snooze %v, want the time left of the 1h timeout", d)
	}
	// Another key has its own breaker.
	if err := process("search", true); err != nil {
		t.Fatalf("other topic: %v", err)
	}
	if got := tr.list(); len(got) != 1 || got[0] != "llm: closed->open" {
		t.Fatalf("transitions %v", got)
	}
}

func TestCircuitBreakerIgnoresSnoozesAndPermanentErrors(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		wantOpen bool
	}{
		{"snooze", job.Snooze(time.Second), false},
		{"rate limited", job.SnoozeBecause(time.Second, middleware.ErrRateLimited), false},
		{"permanent", job.Permanent(errBoom), false},
		{"undecodable", &job.PermanentError{Err: &job.DecodeError{Err: errBoom}, Reason: job.ReasonUndecodable}, false},
		{"canceled", fmt.Errorf("call: %w", context.Canceled), false},
		{"plain error", errBoom, true},
		{"timeout", &middleware.TimeoutError{Err: context.DeadlineExceeded}, true},
		{"panic", &job.PanicError{Value: "x"}, true},
		{"explicit retry", job.RetryIn(time.Second, errBoom), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tr transitions
			b := middleware.NewBreakers(tripAfter2(time.Hour, &tr))
			h := b.Middleware()(job.HandlerFunc(func(context.Context, *job.Job) error { return tt.err }))
			for range 5 {
				if err := h.ProcessJob(context.Background(), &job.Job{Topic: "t"}); err != tt.err && !tt.wantOpen {
					t.Fatalf("err %v, want %v passed through", err, tt.err)
				}
			}
			if open := b.State("t") == gobreaker.StateOpen; open != tt.wantOpen {
				t.Fatalf("open = %v, want %v (counts %+v)", open, tt.wantOpen, b.Counts("t"))
			}
			if !tt.wantOpen && middleware.BreakerExcluded(tt.err) != true {
				t.Fatal("BreakerExcluded disagrees")
			}
		})
	}
}

func TestCircuitBreakerRecovers(t *testing.T) {
	var tr transitions
	opts := tripAfter2(20*time.Millisecond, &tr)
	opts.HalfOpenDelay = 5 * time.Millisecond
	b := middleware.NewBreakers(opts)
	healthy := make(chan struct{})
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	h := b.Middleware()(job.HandlerFunc(func(ctx context.Context, j *job.Job) error {
		select {
		case <-healthy:
		default:
			return errBoom
		}
		if j.ID == "trial" {
			entered <- struct{}{}
			<-release
		}
		return nil
	}))
	process := func(id string) error {
		return h.ProcessJob(context.Background(), &job.Job{ID: id, Topic: "t", Attempt: 1})
	}
	_, _ = process("a"), process("b")
	if b.State("t") != gobreaker.StateOpen {
		t.Fatal("not open")
	}
	close(healthy)

	// Poll (no fixed sleep) until the breaker half-opens and lets the trial
	// job through; it then blocks in the handler.
	trialDone := make(chan error, 1)
	deadline := time.Now().Add(5 * time.Second)
	for b.State("t") != gobreaker.StateHalfOpen {
		if time.Now().After(deadline) {
			t.Fatal("breaker never half-opened")
		}
		time.Sleep(time.Millisecond)
	}
	go func() { trialDone <- process("trial") }()
	<-entered

	// While the trial runs, MaxRequests (1) is taken: others are snoozed
	// for HalfOpenDelay.
	err := process("c")
	if o, d := job.Classify(err); o != job.OutcomeSnooze || d != 5*time.Millisecond || !errors.Is(err, middleware.ErrCircuitOpen) {
		t.Fatalf("half-open rejection: %v %v %v", o, d, err)
	}
	close(release)
	if err := <-trialDone; err != nil {
		t.Fatalf("trial: %v", err)
	}
	if b.State("t") != gobreaker.StateClosed {
		t.Fatalf("state %v after a successful trial, want closed", b.State("t"))
	}
	want := []string{"t: closed->open", "t: open->half-open", "t: half-open->closed"}
	if got := tr.list(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("transitions %v, want %v", got, want)
	}
}

func TestCircuitBreakerKeys(t *testing.T) {
	b := middleware.NewBreakers(&middleware.BreakerOptions{
		Key:      middleware.ByTenant(),
		Settings: gobreaker.Settings{ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 1 }},
		Logger:   quietLogger,
	})
	h := b.Middleware()(job.HandlerFunc(func(context.Context, *job.Job) error { return errBoom }))
	for _, tenant := range []string{"acme", "", ""} {
		_ = h.ProcessJob(context.Background(), &job.Job{Topic: "t", Headers: map[string]string{"tenant": tenant}})
	}
	if b.State("acme") != gobreaker.StateOpen || b.State("") != gobreaker.StateClosed || b.State("globex") != gobreaker.StateClosed {
		t.Fatalf("states acme=%v none=%v globex=%v", b.State("acme"), b.State(""), b.State("globex"))
	}
}

func ExampleCircuitBreaker() {
	breaker := middleware.CircuitBreaker(&middleware.BreakerOptions{
		Settings: gobreaker.Settings{
			Timeout:     30 * time.Second,
			ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 3 },
		},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	h := breaker(job.HandlerFunc(func(context.Context, *job.Job) error {
		return errors.New("model endpoint unavailable")
	}))
	for i := 1; i <= 4; i++ {
		err := h.ProcessJob(context.Background(), &job.Job{Topic: "llm", Attempt: 1})
		outcome, _ := job.Classify(err)
		fmt.Println(i, outcome, errors.Is(err, middleware.ErrCircuitOpen))
	}
	// Output:
	// 1 fail false
	// 2 fail false
	// 3 fail false
	// 4 snooze true
}
