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

// waitCtx blocks until the handler's ctx ends and returns ret(ctx.Err()).
func waitCtx(ret func(error) error) job.HandlerFunc {
	return func(ctx context.Context, _ *job.Job) error {
		<-ctx.Done()
		return ret(ctx.Err())
	}
}

func TestTimeout(t *testing.T) {
	perm := job.Permanent(errBoom)
	tests := []struct {
		name        string
		h           job.HandlerFunc
		wantTimeout bool
		want        error // checked with errors.Is when wantTimeout is false
	}{
		{"ctx error becomes TimeoutError", waitCtx(func(e error) error { return e }), true, nil},
		{"wrapped ctx error", waitCtx(func(e error) error { return fmt.Errorf("call api: %w", e) }), true, nil},
		{"other error after deadline", waitCtx(func(error) error { return errBoom }), true, nil},
		{"success after deadline is an ack", waitCtx(func(error) error { return nil }), false, nil},
		{"permanent passes through", waitCtx(func(error) error { return perm }), false, perm},
		{"error before deadline passes", func(context.Context, *job.Job) error { return errBoom }, false, errBoom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			timeout := time.Millisecond
			if !tt.wantTimeout && tt.want == errBoom {
				timeout = time.Hour
			}
			err := run(t, middleware.Timeout(timeout), tt.h, &job.Job{Topic: "t", Attempt: 1})
			var te *middleware.TimeoutError
			if !tt.wantTimeout {
				if errors.As(err, &te) {
					t.Fatalf("got TimeoutError %v", err)
				}
				if tt.want == nil && err != nil || tt.want != nil && err != tt.want {
					t.Fatalf("err = %v, want %v", err, tt.want)
				}
				return
			}
			if !errors.As(err, &te) || te.Timeout != timeout || te.Topic != "t" {
				t.Fatalf("err = %#v, want *TimeoutError", err)
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Error("TimeoutError does not match context.DeadlineExceeded")
			}
			if o, _ := job.Classify(err); o != job.OutcomeFail {
				t.Errorf("Classify = %v, want fail", o)
			}
		})
	}
}

func TestTimeoutParentCancelIsNotATimeout(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := middleware.Timeout(time.Hour)(waitCtx(func(e error) error { return e })).ProcessJob(ctx, &job.Job{Topic: "t"})
	var te *middleware.TimeoutError
	if !errors.Is(err, context.Canceled) || errors.As(err, &te) {
		t.Fatalf("err = %v, want context.Canceled unwrapped", err)
	}
}

func TestTimeoutByTopic(t *testing.T) {
	mw := middleware.TimeoutByTopic(map[string]time.Duration{"slow": time.Hour, "off": 0}, time.Minute)
	tests := []struct {
		topic string
		want  time.Duration // 0: no deadline
	}{{"slow", time.Hour}, {"off", 0}, {"other", time.Minute}}
	for _, tt := range tests {
		t.Run(tt.topic, func(t *testing.T) {
			var got time.Duration
			_ = run(t, mw, func(ctx context.Context, _ *job.Job) error {
				if dl, ok := ctx.Deadline(); ok {
					got = time.Until(dl)
				}
				return nil
			}, &job.Job{Topic: tt.topic})
			if tt.want == 0 && got != 0 {
				t.Fatalf("deadline set (%v left), want none", got)
			}
			// The deadline was set just before the handler ran: it is within
			// (want - 1 min, want].
			if tt.want != 0 && (got > tt.want || got < tt.want-time.Minute) {
				t.Fatalf("deadline %v away, want about %v", got, tt.want)
			}
		})
	}
}

func TestTimeoutIsRetried(t *testing.T) {
	mw := job.Chain(middleware.Retry(retry.Policy{RandomizationFactor: retry.NoJitter}), middleware.Timeout(time.Millisecond))
	err := run(t, mw, waitCtx(func(e error) error { return e }), &job.Job{Topic: "t", Attempt: 1})
	if o, d := job.Classify(err); o != job.OutcomeRetry || d != 5*time.Second {
		t.Fatalf("Classify = %v %v, want retry 5s", o, d)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatal("retry lost the timeout cause")
	}
}

func ExampleTimeout() {
	slow := job.HandlerFunc(func(ctx context.Context, j *job.Job) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Hour):
			return nil
		}
	})
	h := middleware.Timeout(10 * time.Millisecond)(slow)
	err := h.ProcessJob(context.Background(), &job.Job{Topic: "summarize", Attempt: 1})
	fmt.Println(err)
	fmt.Println(errors.Is(err, context.DeadlineExceeded))
	// Output:
	// conveyor: job on topic "summarize" timed out after 10ms
	// true
}

// TestTimeoutJobDeadlineWins gives a job its own Timeout, as its producer
// may: it bounds the handler whatever deadline the middleware has, and
// without the middleware being given one (middleware.Default included).
func TestTimeoutJobDeadlineWins(t *testing.T) {
	const own = time.Millisecond
	for name, mw := range map[string]job.Middleware{
		"longer deadline":          middleware.Timeout(time.Hour),
		"no deadline":              middleware.Timeout(0),
		"per topic":                middleware.TimeoutByTopic(map[string]time.Duration{"t": time.Hour}, time.Hour),
		"default stack, no option": middleware.Default(nil),
	} {
		t.Run(name, func(t *testing.T) {
			err := run(t, mw, waitCtx(func(e error) error { return e }), &job.Job{ID: "j", Topic: "t", Attempt: 1, Timeout: own})
			var te *middleware.TimeoutError
			if !errors.As(err, &te) || te.Timeout != own {
				t.Fatalf("err = %v, want a TimeoutError after the job's own %v", err, own)
			}
		})
	}
}
