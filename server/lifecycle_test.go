package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/memory"
	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/server"
)

func TestConcurrencyNeverExceeded(t *testing.T) {
	const limit, jobs = 3, 40
	b := newBroker(t)
	var running, peak, done atomic.Int64
	full := make(chan struct{}) // closed once limit handlers run at once
	var fullOnce sync.Once
	h := job.HandlerFunc(func(ctx context.Context, j *job.Job) error {
		n := running.Add(1)
		defer running.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		if n == limit {
			fullOnce.Do(func() { close(full) })
		}
		select {
		case <-full: // the first handlers wait until the limit is reached
		case <-ctx.Done():
			return ctx.Err()
		}
		done.Add(1)
		return nil
	})
	for i := range jobs {
		publish(t, b, broker.Message{Topic: "t", Payload: fmt.Appendf(nil, "%d", i)})
	}
	srv := start(t, b, h, &server.Options{Concurrency: limit, Topics: []string{"t"}})
	waitFor(t, "all jobs acked", func() bool { return srv.Stats().Acked == jobs })
	if p := peak.Load(); p != limit {
		t.Fatalf("peak concurrency %d, want %d", p, limit)
	}
	if done.Load() != jobs {
		t.Fatalf("%d jobs done, want %d", done.Load(), jobs)
	}
}

// TestHeartbeat runs a job for five leases on one server while a second
// server fetches the same topic. The broker's clock is fake: it moves half a
// lease at a time, each time after the first server has renewed its leases,
// so the test does not depend on how fast the machine is. With heartbeats the
// job is never redelivered; without them it is.
func TestHeartbeat(t *testing.T) {
	const lease = 30 * time.Second // on the fake clock
	tests := []struct {
		name          string
		heartbeat     time.Duration // real time
		wantRedeliver bool
	}{
		{"heartbeat keeps the lease", 2 * time.Millisecond, false},
		{"no heartbeat loses it", time.Hour, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			root := newBroker(t, withLease(lease), withClock(clock))
			// Each server fetches as its own consumer; extends counts the
			// first server's renewals of the job.
			var extends atomic.Int64
			// Without heartbeats, the servers are told of a lease long
			// enough to allow the hour-long interval; the broker still
			// expires leases after the real one.
			var told time.Duration
			if tt.wantRedeliver {
				told = 2 * tt.heartbeat
			}
			one := &wrapped{lease: told, Broker: root.Consumer("one"), onExtend: func(ds []*broker.Delivery) {
				for _, d := range ds {
					if d.Job.ID == "long" {
						extends.Add(1)
					}
				}
			}}
			two := &wrapped{lease: told, Broker: root.Consumer("two")}

			var calls atomic.Int64
			finish := make(chan struct{})
			redelivered := make(chan struct{})
			h := job.HandlerFunc(func(ctx context.Context, j *job.Job) error {
				if calls.Add(1) > 1 {
					close(redelivered)
					return nil
				}
				select {
				case <-finish:
				case <-redelivered:
				case <-ctx.Done():
					return ctx.Err()
				}
				return nil
			})
			opts := func() *server.Options {
				return &server.Options{Topics: []string{"t"}, HeartbeatInterval: tt.heartbeat}
			}
			first := start(t, one, h, opts())
			publish(t, root, broker.Message{Topic: "t", ID: "long"})
			waitFor(t, "the first server to take the job", func() bool { return first.Stats().InFlight == 1 })
			second := start(t, two, h, opts())

			if tt.wantRedeliver {
				clock.Advance(lease)
				waitFor(t, "the redelivery", func() bool { return calls.Load() == 2 })
			} else {
				for range 10 { // five leases
					// Heartbeats are serial, so the second renewal counted
					// from now started after the last Advance.
					seen := extends.Load()
					waitFor(t, "a lease renewal", func() bool { return extends.Load() >= seen+2 })
					clock.Advance(lease / 2)
				}
				close(finish)
			}
			waitFor(t, "the job to be acked", func() bool { return first.Stats().Acked+second.Stats().Acked >= 1 })
			if err := first.stop(t); err != nil {
				t.Fatal(err)
			}
			if err := second.stop(t); err != nil {
				t.Fatal(err)
			}
			if got := calls.Load(); (got > 1) != tt.wantRedeliver {
				t.Fatalf("handler called %d times; want redelivery %v", got, tt.wantRedeliver)
			}
			if info := inspect(t, root, "t"); info.Length != 0 {
				t.Fatalf("job left in the topic: %+v", info)
			}
		})
	}
}

func TestGracefulShutdownWaitsForInFlight(t *testing.T) {
	b := newBroker(t)
	release := make(chan struct{})
	var started atomic.Int64
	h := job.HandlerFunc(func(ctx context.Context, j *job.Job) error {
		started.Add(1)
		<-release
		return ctx.Err() // nil: a graceful drain does not cancel handlers
	})
	srv := start(t, b, h, &server.Options{Concurrency: 2, Topics: []string{"t"}})
	releaseAll := sync.OnceFunc(func() { close(release) })
	t.Cleanup(releaseAll) // runs before the server's cleanup if the test fails
	publish(t, b, broker.Message{Topic: "t"})
	publish(t, b, broker.Message{Topic: "t"})
	waitFor(t, "both jobs to start", func() bool { return started.Load() == 2 })

	srv.cancel()
	waitFor(t, "the server to stop being ready", func() bool { return probe(t, srv.Handler(), "/readyz") == http.StatusServiceUnavailable })
	// Stopped fetching: a job published now stays unread.
	publish(t, b, broker.Message{Topic: "t", ID: "late"})
	select {
	case err := <-srv.result:
		t.Fatalf("Run returned %v with jobs in flight", err)
	default:
	}
	if code := probe(t, srv.Handler(), "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz while draining: %d", code)
	}
	releaseAll()
	if err := srv.stop(t); err != nil {
		t.Fatalf("Run after a graceful drain: %v", err)
	}
	st := srv.Stats()
	if st.Acked != 2 || st.Abandoned != 0 || st.InFlight != 0 {
		t.Fatalf("stats %+v", st)
	}
	if info := inspect(t, b, "t"); info.Length != 1 || info.Pending != 0 || info.Lag != 1 {
		t.Fatalf("want only the late job, unread: %+v", info)
	}
}

func TestShutdownTimeoutLeavesJobsForRedelivery(t *testing.T) {
	clock := newFakeClock()
	root := newBroker(t, withClock(clock))
	var attempts []int
	var mu sync.Mutex
	h := job.HandlerFunc(func(ctx context.Context, j *job.Job) error {
		mu.Lock()
		attempts = append(attempts, j.Attempt)
		mu.Unlock()
		if j.Attempt == 1 {
			<-ctx.Done() // never finishes on its own
			return ctx.Err()
		}
		return nil
	})
	first := start(t, root.Consumer("one"), h, &server.Options{Topics: []string{"t"}, ShutdownTimeout: 10 * time.Millisecond})
	publish(t, root, broker.Message{Topic: "t", ID: "stuck"})
	waitFor(t, "the job to start", func() bool { return first.Stats().InFlight == 1 })

	err := first.stop(t)
	if !errors.Is(err, server.ErrJobsAbandoned) || !strings.Contains(err.Error(), "1 job(s)") {
		t.Fatalf("Run: %v, want 1 abandoned job", err)
	}
	if st := first.Stats(); st.Abandoned != 1 || st.Acked != 0 || st.Retried != 0 || st.Processed != 1 {
		t.Fatalf("stats %+v", st)
	}
	if info := inspect(t, root, "t"); info.Pending != 1 {
		t.Fatalf("abandoned job not left pending: %+v", info)
	}

	second := start(t, root.Consumer("two"), h, &server.Options{Topics: []string{"t"}})
	clock.Advance(root.Lease()) // the abandoned job's lease runs out
	waitFor(t, "the job to be redelivered and acked", func() bool { return second.Stats().Acked == 1 })
	mu.Lock()
	defer mu.Unlock()
	if len(attempts) != 2 || attempts[1] != 2 {
		t.Fatalf("attempts %v, want [1 2]: a lost lease counts as an attempt", attempts)
	}
}

func TestAcksFlushOnShutdown(t *testing.T) {
	const jobs = 50
	b := newBroker(t)
	srv := start(t, b, job.HandlerFunc(func(context.Context, *job.Job) error { return nil }), &server.Options{
		Topics:      []string{"t"},
		AckBatch:    1000,      // never full
		AckInterval: time.Hour, // never due
	})
	for range jobs {
		publish(t, b, broker.Message{Topic: "t"})
	}
	waitFor(t, "all jobs processed", func() bool { return srv.Stats().Processed == jobs })
	if info := inspect(t, b, "t"); info.Pending != jobs {
		t.Fatalf("acks were not held in the batch: %+v", info)
	}
	if err := srv.stop(t); err != nil {
		t.Fatal(err)
	}
	if info := inspect(t, b, "t"); info.Length != 0 {
		t.Fatalf("jobs left after a clean drain: %+v", info)
	}
	if st := srv.Stats(); st.Acked != jobs {
		t.Fatalf("acked %d, want %d", st.Acked, jobs)
	}
}

func TestAckBatchSize(t *testing.T) {
	const jobs, batch = 30, 8
	var mu sync.Mutex
	var sizes []int
	b := &sizedAcks{Broker: newBroker(t), record: func(n int) { mu.Lock(); sizes = append(sizes, n); mu.Unlock() }}
	release := make(chan struct{})
	srv := start(t, b, job.HandlerFunc(func(ctx context.Context, _ *job.Job) error {
		<-release
		return nil
	}), &server.Options{Topics: []string{"t"}, Concurrency: jobs, AckBatch: batch, AckInterval: time.Hour})
	releaseAll := sync.OnceFunc(func() { close(release) })
	t.Cleanup(releaseAll)
	for range jobs {
		publish(t, b, broker.Message{Topic: "t"})
	}
	waitFor(t, "all jobs in flight", func() bool { return srv.Stats().InFlight == jobs })
	releaseAll()
	waitFor(t, "full batches acked", func() bool { return srv.Stats().Acked == jobs/batch*batch })
	if err := srv.stop(t); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	total := 0
	for i, n := range sizes {
		total += n
		if n > batch || (i < len(sizes)-1 && n != batch) {
			t.Fatalf("ack batch sizes %v, want full batches of %d then the rest", sizes, batch)
		}
	}
	if total != jobs {
		t.Fatalf("acked %d, want %d", total, jobs)
	}
}

type sizedAcks struct {
	broker.Broker
	record func(int)
}

func (s *sizedAcks) Ack(ctx context.Context, ds ...*broker.Delivery) error {
	s.record(len(ds))
	return s.Broker.Ack(ctx, ds...)
}

func TestAckFailureLeavesJobForRedelivery(t *testing.T) {
	clock := newFakeClock()
	w := &wrapped{Broker: newBroker(t, withClock(clock))}
	w.ackFail.Store(1)
	var attempts atomic.Int64
	srv := start(t, w, job.HandlerFunc(func(context.Context, *job.Job) error {
		attempts.Add(1)
		return nil
	}), &server.Options{Topics: []string{"t"}})
	publish(t, w, broker.Message{Topic: "t"})
	waitFor(t, "the failed ack", func() bool { return srv.Stats().SettleErrors == 1 })
	if info := inspect(t, w.Broker.(*memory.Broker), "t"); info.Pending != 1 {
		t.Fatalf("job not left pending after a failed ack: %+v", info)
	}
	clock.Advance(w.Lease())
	waitFor(t, "the job to be acked after redelivery", func() bool { return srv.Stats().Acked == 1 })
	if st := srv.Stats(); st.SettleErrors != 1 || attempts.Load() != 2 {
		t.Fatalf("stats %+v after %d attempts, want one settle error and two attempts", st, attempts.Load())
	}
}

func TestFetchErrorsBackOffAndRecover(t *testing.T) {
	w := &wrapped{Broker: newBroker(t)}
	w.fetchFail.Store(true)
	logs := &logRecorder{}
	srv := start(t, w, job.HandlerFunc(func(context.Context, *job.Job) error { return nil }), &server.Options{
		Topics:       []string{"t"},
		Logger:       slogNew(logs),
		ErrorBackoff: server.Backoff{Initial: time.Millisecond, Max: 4 * time.Millisecond},
	})
	publish(t, w, broker.Message{Topic: "t"})
	waitFor(t, "several failed fetches", func() bool { return w.fetchErrs.Load() >= 5 })
	if code, body := probeBody(t, srv.Handler(), "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, errDown.Error()) {
		t.Fatalf("/readyz during an outage: %d %q", code, body)
	}
	w.fetchFail.Store(false)
	waitFor(t, "the job after recovery", func() bool { return srv.Stats().Acked == 1 })
	if code := probe(t, srv.Handler(), "/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz after recovery: %d", code)
	}
	if err := srv.stop(t); err != nil {
		t.Fatal(err)
	}
	if n := logs.count("conveyor: fetch failed"); n != 1 {
		t.Errorf("outage logged %d times, want once", n)
	}
	if n := logs.count("conveyor: fetching recovered"); n != 1 {
		t.Errorf("recovery logged %d times, want once", n)
	}
	if got, want := srv.Stats().FetchErrors, w.fetchErrs.Load(); got != want {
		t.Errorf("stats count %d fetch errors, broker saw %d", got, want)
	}
}

func TestBrokerClosedStopsRun(t *testing.T) {
	b := newBroker(t)
	srv := start(t, b, job.HandlerFunc(func(context.Context, *job.Job) error { return nil }), &server.Options{Topics: []string{"t"}})
	waitFor(t, "the server to be ready", func() bool { return probe(t, srv.Handler(), "/readyz") == http.StatusOK })
	_ = b.Close()
	waitFor(t, "Run to return", func() bool {
		select {
		case <-srv.Done():
			return true
		default:
			return false
		}
	})
	if err := srv.stop(t); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("Run: %v, want broker.ErrClosed", err)
	}
}

func TestRunOnce(t *testing.T) {
	h := job.HandlerFunc(func(context.Context, *job.Job) error { return nil })
	t.Run("shutdown before run", func(t *testing.T) {
		s, err := server.New(newBroker(t), h, &server.Options{Topics: []string{"t"}, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := s.Run(context.Background()); !errors.Is(err, server.ErrServerClosed) {
			t.Fatalf("Run after Shutdown: %v", err)
		}
	})
	t.Run("shutdown while running, then run again", func(t *testing.T) {
		s, err := server.New(newBroker(t), h, &server.Options{Topics: []string{"t"}, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		result := make(chan error, 1)
		go func() { result <- s.Run(context.Background()) }()
		waitFor(t, "the server to run", func() bool { return probe(t, s.Handler(), "/healthz") == http.StatusOK })
		if err := s.Shutdown(context.Background()); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		if err := <-result; err != nil {
			t.Fatalf("Run: %v", err)
		}
		<-s.Done()
		if err := s.Run(context.Background()); !errors.Is(err, server.ErrServerClosed) {
			t.Fatalf("second Run: %v", err)
		}
		if err := s.Shutdown(context.Background()); err != nil {
			t.Fatalf("second Shutdown: %v", err)
		}
	})
}

func TestHealthEndpoints(t *testing.T) {
	w := &wrapped{Broker: newBroker(t)}
	s, err := server.New(w, job.HandlerFunc(func(context.Context, *job.Job) error { return nil }),
		&server.Options{Topics: []string{"t"}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	defer hs.Close()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(hs.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	check := func(path string, wantCode int, wantBody string) {
		t.Helper()
		code, body := get(path)
		if code != wantCode || !strings.Contains(body, wantBody) {
			t.Fatalf("GET %s: %d %q, want %d %q", path, code, body, wantCode, wantBody)
		}
	}

	check("/healthz", http.StatusServiceUnavailable, "not running")
	check("/readyz", http.StatusServiceUnavailable, "not running")

	ctx, cancel := context.WithCancel(context.Background())
	result := make(chan error, 1)
	go func() { result <- s.Run(ctx) }()
	waitFor(t, "Run to start", func() bool { c, _ := get("/healthz"); return c == http.StatusOK })
	check("/readyz", http.StatusOK, "ok")

	broken := errors.New("PING: connection refused")
	w.checkErr.Store(&broken)
	check("/readyz", http.StatusServiceUnavailable, "broker: PING: connection refused")
	check("/healthz", http.StatusOK, "ok")
	w.checkErr.Store(nil)
	check("/readyz", http.StatusOK, "ok")

	cancel()
	if err := <-result; err != nil {
		t.Fatal(err)
	}
	check("/healthz", http.StatusServiceUnavailable, "not running")
	check("/readyz", http.StatusServiceUnavailable, "not running")
	check("/metrics", http.StatusNotFound, "")
}

func probe(t testing.TB, h http.Handler, path string) int {
	t.Helper()
	code, _ := probeBody(t, h, path)
	return code
}

func probeBody(t testing.TB, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

func TestHeartbeatRenewsAllHeldLeasesInOneCall(t *testing.T) {
	const jobs = 3
	var widest atomic.Int64
	w := &wrapped{Broker: newBroker(t), onExtend: func(ds []*broker.Delivery) {
		for {
			n := widest.Load()
			if int64(len(ds)) <= n || widest.CompareAndSwap(n, int64(len(ds))) {
				return
			}
		}
	}}
	release := make(chan struct{})
	srv := start(t, w, job.HandlerFunc(func(ctx context.Context, _ *job.Job) error {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	}), &server.Options{Topics: []string{"t"}, Concurrency: jobs, HeartbeatInterval: time.Millisecond})
	releaseAll := sync.OnceFunc(func() { close(release) })
	t.Cleanup(releaseAll)
	for range jobs {
		publish(t, w, broker.Message{Topic: "t"})
	}
	waitFor(t, "all jobs in flight", func() bool { return srv.Stats().InFlight == jobs })
	waitFor(t, "one Extend call with every held job", func() bool { return widest.Load() == jobs })
	releaseAll()
	waitFor(t, "all jobs acked", func() bool { return srv.Stats().Acked == jobs })
	if st := srv.Stats(); st.Extended < jobs || st.ExtendErrors != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestShutdownContextEndsFirst(t *testing.T) {
	release := make(chan struct{})
	b := newBroker(t)
	srv := start(t, b, job.HandlerFunc(func(ctx context.Context, _ *job.Job) error {
		<-release
		return nil
	}), &server.Options{Topics: []string{"t"}})
	releaseAll := sync.OnceFunc(func() { close(release) })
	t.Cleanup(releaseAll)
	publish(t, b, broker.Message{Topic: "t"})
	waitFor(t, "the job to start", func() bool { return srv.Stats().InFlight == 1 })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := srv.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown with an ended context: %v", err)
	}
	releaseAll()
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if st := srv.Stats(); st.Acked != 1 {
		t.Fatalf("stats %+v: the drain went on after Shutdown returned", st)
	}
}

// A job past its first attempt may be a redelivery after a crash, sitting next
// to a job that crashes the worker every time: its ack must not wait for a
// batch that the next crash would lose.
func TestAckOfLaterAttemptIsSentAtOnce(t *testing.T) {
	b := newBroker(t)
	failed := false
	srv := start(t, b, job.HandlerFunc(func(_ context.Context, j *job.Job) error {
		if !failed {
			failed = true
			return job.RetryIn(0, errors.New("once"))
		}
		return nil
	}), &server.Options{Topics: []string{"t"}, Concurrency: 1, AckBatch: 1000, AckInterval: time.Hour})
	publish(t, b, broker.Message{Topic: "t"})
	waitFor(t, "the second attempt acked although the batch is neither full nor due",
		func() bool { return srv.Stats().Acked == 1 })
	if info := inspect(t, b, "t"); info.Length != 0 {
		t.Fatalf("job still stored: %+v", info)
	}
	// A first attempt still waits for its batch.
	publish(t, b, broker.Message{Topic: "t"})
	waitFor(t, "the first-attempt job processed", func() bool { return srv.Stats().Processed == 3 })
	if info := inspect(t, b, "t"); info.Pending != 1 {
		t.Fatalf("first-attempt ack was not batched: %+v", info)
	}
	if err := srv.stop(t); err != nil {
		t.Fatal(err)
	}
}
