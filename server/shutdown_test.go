package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/internal/logtest"
	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/middleware"
	"github.com/conveyor-jobs/conveyor/server"
)

// jsonLog is a JSON slog logger whose records tests read back.
type jsonLog struct{ logtest.Buffer }

func (l *jsonLog) logger() *slog.Logger {
	return l.JSONLogger(&slog.HandlerOptions{Level: slog.LevelDebug})
}

// records returns the records whose message contains text.
func (l *jsonLog) records(t testing.TB, text string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.String()), "\n") {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if msg, _ := r["msg"].(string); strings.Contains(msg, text) {
			out = append(out, r)
		}
	}
	return out
}

// TestAbandonedJobIsLoggedAsAbandoned runs a job that answers the
// cancellation at the shutdown timeout as the retry middleware makes it do
// (a retry after a backoff delay): the server leaves it pending, and both
// the server and the logging middleware log it as abandoned, with the time
// its lease ends, not as a retry.
func TestAbandonedJobIsLoggedAsAbandoned(t *testing.T) {
	b := newBroker(t, withLease(time.Minute))
	var perJob, own jsonLog
	mux := job.NewMux()
	mux.Use(middleware.Logging(perJob.logger(), nil))
	mux.HandleFunc("t", func(ctx context.Context, j *job.Job) error {
		<-ctx.Done()
		return job.RetryIn(4580*time.Millisecond, ctx.Err())
	})
	fetched := time.Now()
	srv := start(t, b, mux, &server.Options{ShutdownTimeout: time.Millisecond, Logger: own.logger()})
	publish(t, b, broker.Message{Topic: "t", ID: "stuck"})
	waitFor(t, "the job to start", func() bool { return srv.Stats().InFlight == 1 })
	if err := srv.stop(t); !errors.Is(err, server.ErrJobsAbandoned) {
		t.Fatalf("Run: %v, want ErrJobsAbandoned", err)
	}
	if info := inspect(t, b, "t"); info.Pending != 1 || info.Delayed != 0 {
		t.Fatalf("abandoned job not left pending: %+v", info)
	}
	for name, l := range map[string]*jsonLog{"logging middleware": &perJob, "server": &own} {
		rs := l.records(t, "job abandoned at shutdown")
		if len(rs) != 1 {
			t.Fatalf("%s: %d abandonment records, want 1:\n%s", name, len(rs), l.String())
		}
		r := rs[0]
		if r["outcome"] != "abandoned" || r["delay"] != nil || r["job_id"] != "stuck" {
			t.Errorf("%s: record %v, want outcome abandoned and no delay", name, r)
		}
		at, err := time.Parse(time.RFC3339Nano, r["redelivered_after"].(string))
		if err != nil || at.Before(fetched.Add(time.Minute)) || at.After(time.Now().Add(time.Minute)) {
			t.Errorf("%s: redelivered_after %v (%v), want the end of the one-minute lease", name, r["redelivered_after"], err)
		}
	}
	if rs := perJob.records(t, "job will be retried"); len(rs) != 0 {
		t.Errorf("an abandoned job was logged as retried: %v", rs)
	}
}

// TestOutcomeAfterShutdownTimeoutIsSettledWhileLeased runs a handler that
// ignores its context and succeeds after the shutdown timeout, while its
// lease still holds: its success is settled, not thrown away.
func TestOutcomeAfterShutdownTimeoutIsSettledWhileLeased(t *testing.T) {
	b := newBroker(t, withLease(time.Minute))
	cancelled, release := make(chan struct{}), make(chan struct{})
	h := job.HandlerFunc(func(ctx context.Context, j *job.Job) error {
		<-ctx.Done() // the shutdown timeout passed …
		close(cancelled)
		<-release // … and the handler goes on regardless
		return nil
	})
	srv := start(t, b, h, &server.Options{Topics: []string{"t"}, ShutdownTimeout: time.Millisecond})
	publish(t, b, broker.Message{Topic: "t", ID: "slow"})
	waitFor(t, "the job to start", func() bool { return srv.Stats().InFlight == 1 })
	srv.cancel()
	<-cancelled
	close(release)
	if err := srv.stop(t); err != nil {
		t.Fatalf("Run: %v, want nil: the late outcome was settled", err)
	}
	if st := srv.Stats(); st.Acked != 1 || st.Abandoned != 0 {
		t.Fatalf("stats %+v, want the job acked", st)
	}
	if info := inspect(t, b, "t"); info.Length != 0 || info.Pending != 0 {
		t.Fatalf("job left after its success was settled: %+v", info)
	}
}

// TestRunReturnsWhenLeasesEnd runs a handler that ignores its context and
// does not return before its lease ends: Run returns then, the job is
// abandoned and logged, and what the handler returns later is discarded.
func TestRunReturnsWhenLeasesEnd(t *testing.T) {
	b := newBroker(t, withLease(300*time.Millisecond))
	var own jsonLog
	release, returned := make(chan struct{}), make(chan struct{})
	h := job.HandlerFunc(func(ctx context.Context, j *job.Job) error {
		defer close(returned)
		<-release
		return nil
	})
	srv := start(t, b, h, &server.Options{Topics: []string{"t"}, ShutdownTimeout: time.Millisecond, Logger: own.logger()})
	publish(t, b, broker.Message{Topic: "t", ID: "stuck"})
	waitFor(t, "the job to start", func() bool { return srv.Stats().InFlight == 1 })
	err := srv.stop(t)
	if !errors.Is(err, server.ErrJobsAbandoned) {
		t.Fatalf("Run: %v, want ErrJobsAbandoned", err)
	}
	rs := own.records(t, "job abandoned at shutdown: its handler was still running when its lease ended")
	if len(rs) != 1 || rs[0]["outcome"] != "abandoned" || rs[0]["redelivered_after"] == nil {
		t.Fatalf("abandonment records %v", rs)
	}
	close(release)
	<-returned
	if st := srv.Stats(); st.Acked != 0 || st.Abandoned != 1 {
		t.Fatalf("stats %+v: a success returned after Run was settled", st)
	}
	if info := inspect(t, b, "t"); info.Length != 1 {
		t.Fatalf("abandoned job not left for redelivery: %+v", info)
	}
}
