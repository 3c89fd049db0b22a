package middleware_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/middleware"
)

// logOnce runs one job through Logging with a JSON handler at level Debug and
// returns the records written.
func logOnce(t *testing.T, opts *middleware.LoggingOptions, err error, j *job.Job) []map[string]any {
	t.Helper()
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	got := run(t, middleware.Logging(logger, opts), func(context.Context, *job.Job) error { return err }, j)
	if got != err {
		t.Fatalf("Logging changed the outcome: %v → %v", err, got)
	}
	var recs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("bad record %q: %v", line, err)
		}
		recs = append(recs, m)
	}
	return recs
}

func TestLoggingOneRecordPerOutcome(t *testing.T) {
	exhausted := &job.PermanentError{Err: job.ErrRetriesExhausted, Reason: job.ReasonExhausted, Handler: "h"}
	tests := []struct {
		name      string
		err       error
		level     string
		outcome   string
		wantDelay string
		wantExtra map[string]any
	}{
		{"ack", nil, "DEBUG", "ack", "", nil},
		{"snooze", job.SnoozeBecause(2*time.Second, middleware.ErrRateLimited), "DEBUG", "snooze", "2s", nil},
		{"retry", job.RetryIn(5*time.Second, errBoom), "WARN", "retry", "5s", nil},
		{"plain failure", errBoom, "WARN", "fail", "", nil},
		{"dead letter", exhausted, "ERROR", "dead-letter", "", map[string]any{"reason": "exhausted", "handler": "h"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := &job.Job{ID: "j-1", Topic: "orchestrate", Attempt: 2, Payload: []byte(`{"secret":"s3"}`), Headers: map[string]string{"authorization": "Bearer t0k"}}
			recs := logOnce(t, nil, tt.err, j)
			if len(recs) != 1 {
				t.Fatalf("%d records, want 1: %v", len(recs), recs)
			}
			r := recs[0]
			want := map[string]any{"level": tt.level, "job_id": "j-1", "topic": "orchestrate", "attempt": float64(2), "outcome": tt.outcome}
			for k, v := range tt.wantExtra {
				want[k] = v
			}
			if tt.wantDelay != "" {
				want["delay"] = float64(mustDuration(t, tt.wantDelay))
			}
			for k, v := range want {
				if r[k] != v {
					t.Errorf("%s = %v, want %v", k, r[k], v)
				}
			}
			if _, ok := r["duration"]; !ok {
				t.Error("no duration")
			}
			if tt.err != nil && r["error"] != tt.err.Error() {
				t.Errorf("error = %v, want %q", r["error"], tt.err)
			}
			if tt.err == nil && r["error"] != nil {
				t.Errorf("error logged on ack: %v", r["error"])
			}
			line, _ := json.Marshal(r)
			for _, secret := range []string{"s3", "t0k", "payload"} {
				if strings.Contains(string(line), secret) {
					t.Errorf("record leaks %q: %s", secret, line)
				}
			}
		})
	}
}

func mustDuration(t *testing.T, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestLoggingOptions(t *testing.T) {
	j := &job.Job{ID: "1", Topic: "t", Attempt: 1, Payload: []byte("0123456789")}
	recs := logOnce(t, &middleware.LoggingOptions{AckLevel: slog.LevelInfo, LogPayload: true, MaxPayload: 4}, nil, j)
	if len(recs) != 1 || recs[0]["level"] != "INFO" || recs[0]["payload"] != "0123" {
		t.Fatalf("records %v, want one INFO record with payload 0123", recs)
	}
	// Records below the handler's level are not built at all.
	var buf bytes.Buffer
	quiet := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	_ = run(t, middleware.Logging(quiet, nil), func(context.Context, *job.Job) error { return nil }, j)
	if buf.Len() != 0 {
		t.Fatalf("ack logged at Warn level: %s", buf.String())
	}
	// A nil logger disables logging.
	if err := run(t, middleware.Logging(nil, nil), func(context.Context, *job.Job) error { return errBoom }, j); err != errBoom {
		t.Fatal(err)
	}
}

func TestLoggingRedactsPasswords(t *testing.T) {
	err := job.Permanent(&urlError{"dial redis://app:hunter2@cache.internal:6379/0: connection refused"})
	recs := logOnce(t, nil, err, &job.Job{ID: "1", Topic: "t"})
	got, _ := recs[0]["error"].(string)
	if strings.Contains(got, "hunter2") || !strings.Contains(got, "redis://app:xxxxx@cache.internal:6379/0") {
		t.Fatalf("error = %q", got)
	}
}

type urlError struct{ s string }

func (e *urlError) Error() string { return e.s }

func TestLoggingPanicStack(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, nil))
	mw := job.Chain(middleware.Logging(logger, nil), middleware.Recover(nil))
	_ = run(t, mw, func(context.Context, *job.Job) error { panic("kaput") }, &job.Job{Topic: "t"})
	if !strings.Contains(buf.String(), "logging_test.go") {
		t.Fatalf("no stack in %s", buf.String())
	}
}

func ExampleLogging() {
	// A text logger without time and duration, so the output is stable.
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey || a.Key == "duration" {
				return slog.Attr{}
			}
			return a
		},
	}))
	h := middleware.Logging(logger, nil)(job.HandlerFunc(func(context.Context, *job.Job) error {
		return job.RetryIn(5*time.Second, errors.New("dial redis://worker:s3cret@cache:6379: refused"))
	}))
	_ = h.ProcessJob(context.Background(), &job.Job{ID: "42", Topic: "orchestrate", Attempt: 1})
	// Output:
	// level=WARN msg="job will be retried" job_id=42 topic=orchestrate attempt=1 outcome=retry delay=5s error="retry in 5s: dial redis://worker:xxxxx@cache:6379: refused"
}

func TestLoggingInterruptedJob(t *testing.T) {
	tests := []struct {
		name   string
		result func(ctx context.Context) error // what the handler returns after its context ended
	}{
		{"retry", func(ctx context.Context) error { return job.RetryIn(5*time.Second, ctx.Err()) }},
		{"success", func(context.Context) error { return nil }}, // a handler that ignores ctx
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
			ctx, cancel := context.WithCancel(context.Background())
			var want error
			h := middleware.Logging(logger, nil)(job.HandlerFunc(func(ctx context.Context, _ *job.Job) error {
				cancel() // the server gives up on the job while it runs
				want = tt.result(ctx)
				return want
			}))
			if err := h.ProcessJob(ctx, &job.Job{ID: "7", Topic: "orchestrate", Attempt: 1}); err != want {
				t.Fatalf("Logging changed the outcome: %v → %v", want, err)
			}
			var rec map[string]any
			if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
				t.Fatalf("want one JSON record, got %q: %v", buf.String(), err)
			}
			if msg, _ := rec["msg"].(string); !strings.HasPrefix(msg, "job interrupted") {
				t.Errorf("msg = %q, want it to say the job was interrupted, not announce an outcome", msg)
			}
			if rec["level"] != "WARN" || rec["context"] != "context canceled" {
				t.Errorf("level = %v, context = %v; want WARN and %q", rec["level"], rec["context"], "context canceled")
			}
		})
	}
}

func TestLoggingAbandonedJob(t *testing.T) {
	leaseEnd := time.Date(2026, 1, 1, 0, 0, 30, 0, time.UTC)
	tests := []struct {
		name    string
		now     time.Time // when the handler returns
		result  func(ctx context.Context) error
		wantMsg string
		want    map[string]any
	}{
		{"answer to the cancellation", leaseEnd.Add(-time.Second),
			func(ctx context.Context) error { return job.RetryIn(4580*time.Millisecond, ctx.Err()) },
			"job abandoned at shutdown", map[string]any{"outcome": "abandoned", "redelivered_after": "2026-01-01T00:00:30Z", "delay": nil}},
		{"success while leased", leaseEnd.Add(-time.Second),
			func(context.Context) error { return nil },
			"job acked", map[string]any{"outcome": "ack", "redelivered_after": nil}},
		{"success after the lease", leaseEnd,
			func(context.Context) error { return nil },
			"job abandoned at shutdown", map[string]any{"outcome": "abandoned", "redelivered_after": "2026-01-01T00:00:30Z"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			h := middleware.Logging(logger, &middleware.LoggingOptions{Now: func() time.Time { return tt.now }})(
				job.HandlerFunc(func(ctx context.Context, _ *job.Job) error {
					cancel(&job.AbandonedError{LeaseEnds: map[string]time.Time{"7": leaseEnd}}) // the server gives up on the job
					return tt.result(ctx)
				}))
			_ = h.ProcessJob(ctx, &job.Job{ID: "7", Topic: "orchestrate", Attempt: 1})
			var rec map[string]any
			if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
				t.Fatalf("want one JSON record, got %q: %v", buf.String(), err)
			}
			if msg, _ := rec["msg"].(string); !strings.HasPrefix(msg, tt.wantMsg) {
				t.Errorf("msg = %q, want %q…", msg, tt.wantMsg)
			}
			for k, v := range tt.want {
				if rec[k] != v {
					t.Errorf("%s = %v, want %v (record %v)", k, rec[k], v, rec)
				}
			}
		})
	}
}
