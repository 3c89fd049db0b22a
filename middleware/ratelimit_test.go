package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/internal/clocktest"
	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/middleware"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestMemoryStoreBucket(t *testing.T) {
	s := middleware.NewMemoryStore(nil)
	ctx := context.Background()
	limit := middleware.PerSecond(2, 3)
	steps := []struct {
		at       time.Duration
		wantOK   bool
		wantWait time.Duration
	}{
		{0, true, 0}, {0, true, 0}, {0, true, 0}, // the burst
		{0, false, 500 * time.Millisecond},
		{0, false, 500 * time.Millisecond}, // a denial takes no token
		{250 * time.Millisecond, false, 250 * time.Millisecond},
		{500 * time.Millisecond, true, 0},
		{500 * time.Millisecond, false, 500 * time.Millisecond},
		{10 * time.Second, true, 0}, {10 * time.Second, true, 0}, {10 * time.Second, true, 0}, // refilled to burst, not beyond
		{10 * time.Second, false, 500 * time.Millisecond},
	}
	for i, st := range steps {
		ok, wait, err := s.Allow(ctx, "acme", limit, t0.Add(st.at))
		if err != nil || ok != st.wantOK || wait != st.wantWait {
			t.Errorf("step %d at %v: ok=%v wait=%v err=%v, want ok=%v wait=%v", i, st.at, ok, wait, err, st.wantOK, st.wantWait)
		}
	}
	// Another key has its own bucket.
	if ok, _, _ := s.Allow(ctx, "globex", limit, t0.Add(10*time.Second)); !ok {
		t.Error("a second key shares the first one's bucket")
	}
}

func TestMemoryStoreEvictsRefilledBuckets(t *testing.T) {
	s := middleware.NewMemoryStore(nil)
	ctx := context.Background()
	limit := middleware.PerSecond(10, 1) // refills in 100 ms
	for i := range 5000 {
		if ok, _, _ := s.Allow(ctx, fmt.Sprint("tenant-", i), limit, t0); !ok {
			t.Fatal("first call denied")
		}
	}
	if s.Len() > 5000 {
		t.Fatalf("Len = %d", s.Len())
	}
	// A minute later every bucket has refilled: the next call sweeps them.
	if ok, _, _ := s.Allow(ctx, "newcomer", limit, t0.Add(time.Minute)); !ok {
		t.Fatal("newcomer denied")
	}
	if n := s.Len(); n != 1 {
		t.Fatalf("Len after sweep = %d, want 1", n)
	}
}

func TestMemoryStoreMaxKeys(t *testing.T) {
	s := middleware.NewMemoryStore(&middleware.MemoryStoreOptions{MaxKeys: 100})
	ctx := context.Background()
	limit := middleware.PerSecond(0.001, 1) // never refills during the test
	for i := range 1000 {
		_, _, _ = s.Allow(ctx, fmt.Sprint("tenant-", i), limit, t0.Add(time.Duration(i)*time.Millisecond))
		if n := s.Len(); n > 100 {
			t.Fatalf("after %d keys: Len = %d > MaxKeys", i+1, n)
		}
	}
	// The most recently used key is kept: it is still limited.
	if ok, _, _ := s.Allow(ctx, "tenant-999", limit, t0.Add(time.Second)); ok {
		t.Error("the newest bucket was dropped")
	}
}

func TestMemoryStoreConcurrent(t *testing.T) {
	s := middleware.NewMemoryStore(nil)
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for range 200 {
				if ok, _, _ := s.Allow(context.Background(), fmt.Sprint("k", g%2), middleware.PerSecond(1, 50), t0); ok {
					admitted.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n := admitted.Load(); n != 100 { // two keys, burst 50 each, no time passes
		t.Fatalf("admitted %d, want 100", n)
	}
}

func TestRateLimitSnoozes(t *testing.T) {
	clk := clocktest.New(t0)
	mw := middleware.RateLimit(&middleware.RateLimitOptions{
		Key:    middleware.ByTenant(),
		Limit:  middleware.PerSecond(1, 1),
		Limits: map[string]middleware.Limit{"vip": middleware.PerSecond(100, 2), "free": {}},
		Now:    clk.Now,
	})
	var ran atomic.Int64
	h := mw(job.HandlerFunc(func(context.Context, *job.Job) error { ran.Add(1); return nil }))
	process := func(tenant string) error {
		return h.ProcessJob(context.Background(), &job.Job{Topic: "t", Attempt: 1, Headers: map[string]string{"tenant": tenant}})
	}
	tests := []struct {
		tenant    string
		advance   time.Duration
		wantDelay time.Duration // 0: ran
	}{
		{"acme", 0, 0},
		{"acme", 0, time.Second},
		{"acme", 400 * time.Millisecond, 600 * time.Millisecond},
		{"acme", 600 * time.Millisecond, 0},
		{"vip", 0, 0}, {"vip", 0, 0}, {"vip", 0, 10 * time.Millisecond},
		{"free", 0, 0}, {"free", 0, 0}, {"free", 0, 0}, // zero limit: unlimited
		{"", 0, 0}, {"", 0, 0}, // no tenant: not limited
	}
	for i, tt := range tests {
		clk.Advance(tt.advance)
		before := ran.Load()
		err := process(tt.tenant)
		o, d := job.Classify(err)
		if tt.wantDelay == 0 {
			if err != nil || ran.Load() != before+1 {
				t.Errorf("step %d (%s): err=%v ran=%v, want it to run", i, tt.tenant, err, ran.Load() > before)
			}
			continue
		}
		if o != job.OutcomeSnooze || d != tt.wantDelay || !errors.Is(err, middleware.ErrRateLimited) {
			t.Errorf("step %d (%s): %v %v %v, want snooze %v (rate limited)", i, tt.tenant, o, d, err, tt.wantDelay)
		}
		if ran.Load() != before {
			t.Errorf("step %d: a limited job ran", i)
		}
	}
}

func TestKeyFuncs(t *testing.T) {
	j := &job.Job{Topic: "orchestrate", Headers: map[string]string{"tenant": "acme", "operation": "llm"}}
	bare := &job.Job{Topic: "orchestrate"}
	tests := []struct {
		name     string
		key      middleware.KeyFunc
		want     string
		wantBare string
	}{
		{"topic", middleware.ByTopic(), "orchestrate", "orchestrate"},
		{"tenant", middleware.ByTenant(), "acme", ""},
		{"operation", middleware.ByOperation(), "llm", "orchestrate"},
		{"tenant and operation", middleware.ByTenantOperation(), "acme:llm", ""},
		{"header", middleware.ByHeader("operation"), "llm", ""},
		{"combine", middleware.Combine(middleware.ByTopic(), middleware.ByTenant()), "orchestrate:acme", ""},
	}
	for _, tt := range tests {
		if got := tt.key(j); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
		if got := tt.key(bare); got != tt.wantBare {
			t.Errorf("%s without headers: %q, want %q", tt.name, got, tt.wantBare)
		}
	}
}

func TestLimitHelpers(t *testing.T) {
	if l := middleware.Every(200*time.Millisecond, 3); l.Rate != 5 || l.Burst != 3 {
		t.Errorf("Every = %+v", l)
	}
	for _, l := range []middleware.Limit{{}, {Rate: -1}, middleware.Every(0, 1)} {
		if !l.Unlimited() {
			t.Errorf("%+v is limited", l)
		}
	}
	if middleware.PerSecond(1, 0).Unlimited() {
		t.Error("PerSecond(1, 0) is unlimited")
	}
}

// failingStore is a LimiterStore whose backend is down.
type failingStore struct{}

func (failingStore) Allow(context.Context, string, middleware.Limit, time.Time) (bool, time.Duration, error) {
	return false, 0, errors.New("dial redis://u:pw@cache: refused")
}

func TestRateLimitStoreErrors(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, failClosed := range []bool{false, true} {
		ran := false
		mw := middleware.RateLimit(&middleware.RateLimitOptions{Limit: middleware.PerSecond(1, 1), Store: failingStore{}, FailClosed: failClosed, Logger: quiet})
		err := run(t, mw, func(context.Context, *job.Job) error { ran = true; return nil }, &job.Job{Topic: "t"})
		if !failClosed && (err != nil || !ran) {
			t.Errorf("fail open: err=%v ran=%v, want the job to run", err, ran)
		}
		if o, d := job.Classify(err); failClosed && (ran || o != job.OutcomeSnooze || d != time.Second || !errors.Is(err, middleware.ErrRateLimited)) {
			t.Errorf("fail closed: %v %v %v ran=%v", o, d, err, ran)
		}
	}
}

func TestRateLimitNilOptionsPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	middleware.RateLimit(nil)
}

func ExampleRateLimit() {
	// Two "llm" jobs per second per tenant, bursts of two; a fixed clock
	// for the example.
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	limit := middleware.RateLimit(&middleware.RateLimitOptions{
		Key:   middleware.ByTenantOperation(),
		Limit: middleware.PerSecond(2, 2),
		Now:   func() time.Time { return now },
	})
	h := limit(job.HandlerFunc(func(context.Context, *job.Job) error { return nil }))
	for i := range 3 {
		j := &job.Job{ID: fmt.Sprint(i), Topic: "agent", Attempt: 1,
			Headers: map[string]string{"tenant": "acme", "operation": "llm"}}
		err := h.ProcessJob(context.Background(), j)
		outcome, delay := job.Classify(err)
		fmt.Println(j.ID, outcome, delay, errors.Is(err, middleware.ErrRateLimited))
	}
	// Output:
	// 0 ack 0s false
	// 1 ack 0s false
	// 2 snooze 500ms true
}
