package reliability

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/redis"
	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/server"
)

// Short timings shared by the fault tests: a lease of a second, and brokers
// that block and recover every 100ms, so a lost job comes back in about
// Lease + ClaimInterval.
const (
	testLease  = time.Second
	fastBlock  = 100 * time.Millisecond
	fastClaim  = 100 * time.Millisecond
	settleWait = 60 * time.Second // failure deadline for the final accounting
)

// testLogger returns a logger writing to an in-memory sink, and the sink. The
// tail of the output is printed when the test fails.
func testLogger(t testing.TB) (*slog.Logger, *logLines) {
	t.Helper()
	sink := &logLines{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log output (tail):\n%s", tailLines(sink.String(), 80))
		}
	})
	return slog.New(slog.NewTextHandler(sink, &slog.HandlerOptions{Level: slog.LevelDebug})), sink
}

// openBroker opens a Redis broker at url in namespace ns as consumer, with
// the fast test timings; mod may change the options. It is closed when the
// test ends.
func openBroker(t testing.TB, url, ns, consumer string, logger *slog.Logger, mod func(*redis.Options)) *redis.Broker {
	t.Helper()
	o := &redis.Options{
		Namespace:     ns,
		Consumer:      consumer,
		Lease:         testLease,
		Block:         fastBlock,
		ClaimInterval: fastClaim,
		Logger:        logger,
	}
	if mod != nil {
		mod(o)
	}
	b, err := redis.Open(url, o)
	if err != nil {
		t.Fatalf("redis.Open: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// runner is a server running in a goroutine of the test.
type runner struct {
	srv     *server.Server
	timeout time.Duration // the server's shutdown timeout
	cancel  context.CancelFunc
	done    chan struct{}
	err     error // Run's result, set before done is closed
}

// runServer starts a server for b and h with o (Logger filled in when nil).
// It is stopped and joined when the test ends.
func runServer(t testing.TB, b broker.Broker, h job.Handler, o *server.Options) *runner {
	t.Helper()
	if o == nil {
		o = &server.Options{}
	}
	if o.Logger == nil {
		o.Logger, _ = testLogger(t)
	}
	srv, err := server.New(b, h, o)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &runner{srv: srv, timeout: o.ShutdownTimeout, cancel: cancel, done: make(chan struct{})}
	if r.timeout == 0 {
		r.timeout = server.DefaultShutdownTimeout
	}
	go func() {
		defer close(r.done)
		r.err = srv.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-r.done
	})
	return r
}

// Stop cancels Run's context and waits for Run to return, failing the test if
// it has not returned after the shutdown timeout plus generous slack (a
// failure deadline, not a timing assertion). It returns Run's error.
func (r *runner) Stop(t testing.TB) error {
	t.Helper()
	r.cancel()
	return r.Wait(t)
}

// Wait waits for Run to return, with the same failure deadline as Stop.
func (r *runner) Wait(t testing.TB) error {
	t.Helper()
	limit := r.timeout + 30*time.Second
	select {
	case <-r.done:
		return r.err
	case <-time.After(limit):
		t.Fatalf("Run did not return within the shutdown timeout %v plus slack (%v in all)", r.timeout, limit)
		return nil
	}
}

// Running reports whether Run has not returned yet.
func (r *runner) Running() bool {
	select {
	case <-r.done:
		return false
	default:
		return true
	}
}

// recordingHandler returns a handler that records deliveries and successes
// in l, runs work (which may be nil) and returns its error.
func recordingHandler(l *ledger, work func(ctx context.Context, j *job.Job) error) job.HandlerFunc {
	return func(ctx context.Context, j *job.Job) error {
		l.delivered(j.ID)
		if work != nil {
			if err := work(ctx, j); err != nil {
				return err
			}
		}
		l.succeeded(j.ID)
		return nil
	}
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// reportPath returns a fresh report file path for worker subprocesses.
func reportPath(t testing.TB) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "report.log")
}

// countLines returns how many lines of s contain sub.
func countLines(s, sub string) int {
	n := 0
	for line := range strings.Lines(s) {
		if strings.Contains(line, sub) {
			n++
		}
	}
	return n
}

// vmRSS returns this process's resident set size from /proc/self/status, or
// "unknown".
func vmRSS() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// isSignaled reports whether err (from cmd.Wait) says the process was killed
// by a signal.
func isSignaled(err error) bool {
	var ee interface{ ExitCode() int }
	return errors.As(err, &ee) && ee.ExitCode() == -1
}
