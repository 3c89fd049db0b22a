package server_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/memory"
	"github.com/conveyor-jobs/conveyor/internal/clocktest"
	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/server"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// quiet is a logger that drops everything.
var quiet = slog.New(slog.DiscardHandler)

// newBroker returns a memory broker whose empty fetches return quickly, so
// that tests driving a fake clock see due jobs soon. It is closed at the end
// of the test.
func newBroker(t testing.TB, opts ...func(*memory.Options)) *memory.Broker {
	t.Helper()
	o := &memory.Options{FetchWait: 5 * time.Millisecond}
	for _, f := range opts {
		f(o)
	}
	b := memory.New(o)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func withLease(d time.Duration) func(*memory.Options) {
	return func(o *memory.Options) { o.Lease = d }
}

func withClock(c *clocktest.Clock) func(*memory.Options) {
	return func(o *memory.Options) { o.Now = c.Now }
}

// newFakeClock returns a fake clock at the start of 2026.
func newFakeClock() *clocktest.Clock {
	return clocktest.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
}

// running is a server started by start.
type running struct {
	*server.Server
	cancel context.CancelFunc
	result chan error
	once   sync.Once
	err    error
}

// stop cancels the server's context and returns what Run returned.
func (r *running) stop(t testing.TB) error {
	t.Helper()
	r.once.Do(func() {
		r.cancel()
		select {
		case r.err = <-r.result:
		case <-time.After(20 * time.Second):
			t.Fatal("Run did not return after its context ended")
		}
	})
	return r.err
}

// start creates a server and runs it until the test ends (or stop).
func start(t testing.TB, b broker.Broker, h job.Handler, opts *server.Options) *running {
	t.Helper()
	if opts == nil {
		opts = &server.Options{}
	}
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	s, err := server.New(b, h, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Server: s, cancel: cancel, result: make(chan error, 1)}
	go func() { r.result <- s.Run(ctx) }()
	t.Cleanup(func() { _ = r.stop(t) })
	return r
}

// waitFor polls cond until it holds, failing the test after 10s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func publish(t testing.TB, b broker.Broker, m broker.Message) string {
	t.Helper()
	id, err := b.Publish(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func inspect(t testing.TB, b *memory.Broker, topic string) broker.TopicInfo {
	t.Helper()
	info, err := b.Inspect(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	return *info
}

func deadLetters(t testing.TB, b *memory.Broker, topic string) []broker.DeadLetter {
	t.Helper()
	dls, err := b.DeadLetters(context.Background(), topic, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	return dls
}

// wrapped is a broker whose methods tests can make fail.
type wrapped struct {
	broker.Broker
	fetchFail  atomic.Bool  // Fetch fails while set
	fetchErrs  atomic.Int64 // failed Fetch calls
	ackFail    atomic.Int64 // the next ackFail Ack calls fail
	checkErr   atomic.Pointer[error]
	onExtend   func(ds []*broker.Delivery)
	extendCall atomic.Int64
	lease      time.Duration // reported by Lease when set
}

func (w *wrapped) Lease() time.Duration {
	if w.lease > 0 {
		return w.lease
	}
	return w.Broker.Lease()
}

var errDown = errors.New("store unreachable")

func (w *wrapped) Fetch(ctx context.Context, topics []string, max int) ([]*broker.Delivery, error) {
	if w.fetchFail.Load() {
		w.fetchErrs.Add(1)
		return nil, errDown
	}
	return w.Broker.Fetch(ctx, topics, max)
}

func (w *wrapped) Ack(ctx context.Context, ds ...*broker.Delivery) error {
	if w.ackFail.Add(-1) >= 0 {
		return errDown
	}
	return w.Broker.Ack(ctx, ds...)
}

func (w *wrapped) Extend(ctx context.Context, ds ...*broker.Delivery) error {
	err := w.Broker.Extend(ctx, ds...)
	w.extendCall.Add(1)
	if w.onExtend != nil {
		w.onExtend(ds)
	}
	return err
}

func (w *wrapped) Check(ctx context.Context) error {
	if p := w.checkErr.Load(); p != nil {
		return *p
	}
	return nil
}

// logRecorder is a slog.Handler keeping the messages it receives.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, r.Message)
	return nil
}

func slogNew(h slog.Handler) *slog.Logger { return slog.New(h) }

// count returns how many messages start with prefix.
func (l *logRecorder) count(prefix string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if len(m) >= len(prefix) && m[:len(prefix)] == prefix {
			n++
		}
	}
	return n
}
