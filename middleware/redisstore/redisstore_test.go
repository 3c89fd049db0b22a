package redisstore_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/conveyor-jobs/conveyor/internal/redistest"
	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/middleware"
	"github.com/conveyor-jobs/conveyor/middleware/redisstore"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func newStore(t *testing.T, srv *redistest.Server) *redisstore.Store {
	t.Helper()
	s, err := redisstore.New(srv.Client(t), &redisstore.Options{Namespace: srv.Namespace})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestNewValidates(t *testing.T) {
	if _, err := redisstore.New(nil, nil); err == nil {
		t.Error("nil client accepted")
	}
	srv := redistest.Start(t)
	if _, err := redisstore.New(srv.Client(t), &redisstore.Options{Namespace: "a{b}"}); err == nil {
		t.Error("namespace with braces accepted")
	}
	s, err := redisstore.New(srv.Client(t), nil)
	if err != nil || s.Key("acme") != "conveyor:rl:{acme}" {
		t.Errorf("default namespace: %v %q", err, s.Key("acme"))
	}
}

func TestBurstThenWait(t *testing.T) {
	srv := redistest.Start(t)
	s := newStore(t, srv)
	ctx := context.Background()
	limit := middleware.PerSecond(1, 5) // refills one token per second: the test runs well within one
	for i := range 5 {
		if ok, wait, err := s.Allow(ctx, "acme", limit, time.Time{}); err != nil || !ok {
			t.Fatalf("burst call %d: ok=%v wait=%v err=%v", i, ok, wait, err)
		}
	}
	ok, wait, err := s.Allow(ctx, "acme", limit, time.Time{})
	if err != nil || ok || wait <= 0 || wait > time.Second {
		t.Fatalf("6th call: ok=%v wait=%v err=%v, want a denial with 0 < wait ≤ 1s", ok, wait, err)
	}
	// Another key is another bucket.
	if ok, _, err := s.Allow(ctx, "globex", limit, time.Time{}); err != nil || !ok {
		t.Fatalf("second key: ok=%v err=%v", ok, err)
	}
	// The bucket lives at the documented key and expires once refilled
	// (five tokens at one per second: within about 5 s).
	rdb := srv.Client(t)
	key := srv.Namespace + ":rl:{acme}"
	if s.Key("acme") != key {
		t.Fatalf("Key = %q, want %q", s.Key("acme"), key)
	}
	ttl, err := rdb.PTTL(ctx, key).Result()
	if err != nil || ttl <= 0 || ttl > 5*time.Second+10*time.Millisecond {
		t.Fatalf("PTTL %s = %v, %v; want 0 < ttl ≤ 5s", key, ttl, err)
	}
}

func TestUnlimitedSkipsRedis(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	s := newStore(t, srv)
	if ok, _, err := s.Allow(context.Background(), "x", middleware.Limit{}, time.Time{}); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if n, _ := rdb.Exists(context.Background(), s.Key("x")).Result(); n != 0 {
		t.Fatal("an unlimited key was written")
	}
}

func TestStoreErrorIsReturned(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	s, _ := redisstore.New(rdb, &redisstore.Options{Namespace: srv.Namespace})
	_ = rdb.Close()
	if _, _, err := s.Allow(context.Background(), "x", middleware.PerSecond(1, 1), time.Time{}); err == nil {
		t.Fatal("no error from a closed client")
	}
}

func TestRateLimitMiddlewareWithRedis(t *testing.T) {
	srv := redistest.Start(t)
	mw := middleware.RateLimit(&middleware.RateLimitOptions{
		Key:   middleware.ByTenant(),
		Limit: middleware.PerSecond(1, 1),
		Store: newStore(t, srv),
	})
	h := mw(job.HandlerFunc(func(context.Context, *job.Job) error { return nil }))
	j := &job.Job{Topic: "t", Attempt: 1, Headers: map[string]string{"tenant": "acme"}}
	if err := h.ProcessJob(context.Background(), j); err != nil {
		t.Fatal(err)
	}
	err := h.ProcessJob(context.Background(), j)
	if o, d := job.Classify(err); o != job.OutcomeSnooze || d <= 0 || d > time.Second || !errors.Is(err, middleware.ErrRateLimited) {
		t.Fatalf("second job: %v %v %v, want a rate-limited snooze of at most 1s", o, d, err)
	}
}

// TestSharedBucketHoldsTheRate is the one test that measures a rate. Four
// workers, each with its own client and connection pool (as separate servers
// would have), draw from one bucket of 200 jobs/s with a burst of 10 for 3 s;
// a denied worker waits the time the store says a token is due, as a snoozed
// job would. The test counts admissions between the first and the last one,
// minus the initial burst, and requires the rate over that span to be within
// 10% of the limit.
//
// Why these numbers: GCRA enforces the upper bound in Redis, on Redis's own
// clock, whatever the workers do; only the lower bound depends on our speed.
// With a burst of 1, any token not claimed the instant it is due is lost
// forever, so the measured rate would drop by the workers' mean lateness
// (1 ms late per 5 ms token costs 17%): that measures a busy machine, not
// Redis. A burst of 10 absorbs up to 50 ms of lateness without losing
// capacity, so the lower bound holds on a loaded 2-core machine too, and the
// initial burst (10 admissions at once) is subtracted from the count. The
// span's endpoints are read on the local monotonic clock; their error (about
// a round trip, well under 1 ms) is under 0.05% of 3 s.
func TestSharedBucketHoldsTheRate(t *testing.T) {
	if testing.Short() {
		t.Skip("measures a rate for 3 s")
	}
	srv := redistest.Start(t)
	const (
		rate    = 200.0
		window  = 3 * time.Second
		burst   = 10
		workers = 4
	)
	limit := middleware.PerSecond(rate, burst)
	ctx, cancel := context.WithTimeout(context.Background(), window)
	defer cancel()

	var (
		mu    sync.Mutex
		times []time.Time
		errs  []error
		wg    sync.WaitGroup
	)
	for range workers {
		s := newStore(t, srv) // its own client, its own pool
		wg.Go(func() {
			for ctx.Err() == nil {
				ok, wait, err := s.Allow(ctx, "shared", limit, time.Time{})
				now := time.Now()
				switch {
				case err != nil:
					if ctx.Err() == nil {
						mu.Lock()
						errs = append(errs, err)
						mu.Unlock()
					}
					return
				case ok:
					mu.Lock()
					times = append(times, now)
					mu.Unlock()
				default:
					time.Sleep(wait)
				}
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("store errors: %v", errs)
	}
	if len(times) < 100 {
		t.Fatalf("only %d admissions", len(times))
	}
	first, last := times[0], times[0]
	for _, at := range times {
		if at.Before(first) {
			first = at
		}
		if at.After(last) {
			last = at
		}
	}
	span := last.Sub(first).Seconds()
	got := float64(len(times)-burst) / span
	t.Logf("%d admissions over %.3fs, burst %d: %.1f/s (limit %.0f/s)", len(times), span, burst, got, rate)
	if got < rate*0.9 || got > rate*1.1 {
		t.Fatalf("admitted %.1f/s, want within 10%% of %.0f/s", got, rate)
	}
}

// BenchmarkAllow is one GCRA script call per job against a real Redis.
func BenchmarkAllow(b *testing.B) {
	srv := redistest.Start(b)
	s, err := redisstore.New(srv.Client(b), &redisstore.Options{Namespace: srv.Namespace})
	if err != nil {
		b.Fatal(err)
	}
	ctx, limit := context.Background(), middleware.PerSecond(1e9, 1e6)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := s.Allow(ctx, "bench", limit, time.Time{}); err != nil {
			b.Fatal(err)
		}
	}
}
