package middleware_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/conveyor-jobs/conveyor/internal/clocktest"
	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/middleware"
	"github.com/conveyor-jobs/conveyor/retry"
)

// stack is a full Default stack with observable parts.
type stack struct {
	h        job.Handler
	rec      *fakeRecorder
	log      *bytes.Buffer
	breakers *middleware.Breakers
	clk      *clocktest.Clock
	// storeHadDeadline is set when the rate-limit store was called with a
	// deadline in its context.
	storeHadDeadline bool
}

// probeStore is a MemoryStore that notes whether its caller's context had a
// deadline.
type probeStore struct {
	st    *stack
	inner *middleware.MemoryStore
}

func (p *probeStore) Allow(ctx context.Context, key string, l middleware.Limit, now time.Time) (bool, time.Duration, error) {
	if _, ok := ctx.Deadline(); ok {
		p.st.storeHadDeadline = true
	}
	return p.inner.Allow(ctx, key, l, now)
}

// newStack wraps handler in Default with every part on: logging, metrics,
// the mux's handler names, retry with exact delays, a rate limit of 1 job/s
// (burst 1) per tenant, breakers tripping after 3 consecutive failures, a
// 5 ms timeout.
func newStack(t *testing.T, handler job.HandlerFunc) *stack {
	t.Helper()
	st := &stack{rec: newFakeRecorder(), log: &bytes.Buffer{}, clk: clocktest.New(t0)}
	st.breakers = middleware.NewBreakers(&middleware.BreakerOptions{
		Settings: gobreaker.Settings{Timeout: time.Hour, ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 3 }},
		Logger:   quietLogger,
	})
	mux := job.NewMux()
	mux.Use(middleware.Default(&middleware.DefaultOptions{
		Logger:     slog.New(slog.NewJSONHandler(st.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Recorder:   st.rec,
		DeadLetter: &middleware.DeadLetterOptions{HandlerName: func(j *job.Job) string { return mux.HandlerName(j.Topic) }},
		Retry:      &retry.Policy{RandomizationFactor: retry.NoJitter},
		RateLimit: &middleware.RateLimitOptions{
			Key: middleware.ByTenant(), Limit: middleware.PerSecond(1, 1), Now: st.clk.Now,
			Store: &probeStore{st: st, inner: middleware.NewMemoryStore(nil)},
		},
		Breakers: st.breakers,
		Timeout:  5 * time.Millisecond,
	}))
	mux.HandleFunc("t", handler)
	st.h = mux
	return st
}

func (st *stack) process(tenant string, attempt int) error {
	return st.h.ProcessJob(context.Background(), &job.Job{ID: "j", Topic: "t", Attempt: attempt, Headers: map[string]string{"tenant": tenant}})
}

func (st *stack) logLines() []string {
	return strings.Split(strings.TrimSpace(st.log.String()), "\n")
}

// TestDefaultOrder proves each ordering rule of DefaultStack by an effect that
// a different order would change.
func TestDefaultOrder(t *testing.T) {
	t.Run("recover innermost: a panic is retried, counted by the breaker, logged once", func(t *testing.T) {
		st := newStack(t, func(context.Context, *job.Job) error { panic("kaput") })
		err := st.process("a", 1)
		if o, d := job.Classify(err); o != job.OutcomeRetry || d != 5*time.Second {
			t.Fatalf("%v %v, want retry 5s", o, d)
		}
		if c := st.breakers.Counts("t"); c.TotalFailures != 1 {
			t.Fatalf("breaker counts %+v, want 1 failure", c)
		}
		if lines := st.logLines(); len(lines) != 1 || !strings.Contains(lines[0], `"outcome":"retry"`) || !strings.Contains(lines[0], "kaput") {
			t.Fatalf("log %v", lines)
		}
		if got := st.rec.events(); fmt.Sprint(got) != "[t/dequeued=1 t/failed=1 t/retried=1]" {
			t.Fatalf("metrics %v", got)
		}
	})

	t.Run("timeout bounds the handler only, and timeouts trip the breaker", func(t *testing.T) {
		st := newStack(t, func(ctx context.Context, _ *job.Job) error { <-ctx.Done(); return ctx.Err() })
		for i := range 3 {
			st.clk.Advance(time.Second) // a fresh token each time
			err := st.process("a", 1)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("job %d: %v, want a timeout", i, err)
			}
		}
		if st.breakers.State("t") != gobreaker.StateOpen {
			t.Fatalf("breaker %v after 3 timeouts, want open", st.breakers.State("t"))
		}
		if st.storeHadDeadline {
			t.Fatal("the handler's deadline also bounded the rate-limit store call")
		}
		st.clk.Advance(time.Second)
		err := st.process("a", 1)
		if o, _ := job.Classify(err); o != job.OutcomeSnooze || !errors.Is(err, middleware.ErrCircuitOpen) {
			t.Fatalf("%v %v, want a circuit-open snooze (Retry lets it through)", o, err)
		}
		if got := st.rec.events(); fmt.Sprint(got) != "[t/breaker_rejected=1 t/dequeued=4 t/failed=3 t/retried=3 t/snoozed=1]" {
			t.Fatalf("metrics %v", got)
		}
	})

	t.Run("rate limit outside the breaker: throttled jobs never reach it", func(t *testing.T) {
		ran := 0
		st := newStack(t, func(context.Context, *job.Job) error { ran++; return errBoom })
		for range 10 { // same instant: only the first gets a token
			_ = st.process("a", 1)
		}
		if ran != 1 {
			t.Fatalf("handler ran %d times, want 1", ran)
		}
		if c := st.breakers.Counts("t"); c.Requests != 1 || c.TotalExclusions != 0 {
			t.Fatalf("breaker saw %+v, want only the job that ran", c)
		}
		if got := st.rec.events(); fmt.Sprint(got) != "[t/dequeued=10 t/failed=1 t/rate_limited=9 t/retried=1 t/snoozed=9]" {
			t.Fatalf("metrics %v", got)
		}
	})

	t.Run("retry outside, dead letter and logging see the final outcome", func(t *testing.T) {
		st := newStack(t, func(context.Context, *job.Job) error { return errBoom })
		j := &job.Job{ID: "j", Topic: "t", Attempt: 4, Headers: map[string]string{"tenant": "a"}}
		err := st.h.ProcessJob(context.Background(), j)
		f := job.FailureOf(j, err, job.ReasonError, time.Time{})
		if o, _ := job.Classify(err); o != job.OutcomeDeadLetter || f.Reason != job.ReasonExhausted || !strings.Contains(f.Handler, "TestDefaultOrder") {
			t.Fatalf("%v %+v, want an exhausted dead letter naming the handler", o, f)
		}
		lines := st.logLines()
		if len(lines) != 1 || !strings.Contains(lines[0], `"level":"ERROR"`) || !strings.Contains(lines[0], `"reason":"exhausted"`) || !strings.Contains(lines[0], `"handler":`) {
			t.Fatalf("log %v", lines)
		}
		if got := st.rec.events(); fmt.Sprint(got) != "[t/dead_lettered=1 t/dequeued=1 t/failed=1]" {
			t.Fatalf("metrics %v", got)
		}
	})
}

func TestDefaultStackLeavesOutNilParts(t *testing.T) {
	if n := len(middleware.DefaultStack(nil)); n != 4 { // DeadLetter, Retry, Timeout, Recover
		t.Fatalf("%d middleware, want 4", n)
	}
	// Even the bare stack recovers panics and retries.
	err := run(t, middleware.Default(nil), func(context.Context, *job.Job) error { panic("x") }, &job.Job{Topic: "t", Attempt: 1})
	if o, _ := job.Classify(err); o != job.OutcomeRetry {
		t.Fatalf("%v, want retry", o)
	}
}

func ExampleDefault() {
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey || a.Key == "duration" || a.Key == "stack" {
				return slog.Attr{}
			}
			return a
		},
	}))
	mux := job.NewMux()
	mux.Use(middleware.Default(&middleware.DefaultOptions{
		Logger:  logger,
		Retry:   &retry.Policy{RandomizationFactor: retry.NoJitter},
		Timeout: time.Minute,
	}))
	mux.HandleFunc("orchestrate", func(ctx context.Context, j *job.Job) error {
		panic("nil plan")
	})
	_ = mux.ProcessJob(context.Background(), &job.Job{ID: "1", Topic: "orchestrate", Attempt: 1})
	// Output:
	// level=WARN msg="job will be retried" job_id=1 topic=orchestrate attempt=1 outcome=retry delay=5s error="retry in 5s: conveyor: handler panicked: nil plan"
}
