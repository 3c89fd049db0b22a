package schedule_test

import (
	"context"
	"sync"
	"testing"
	"time"
)

// fakeClock is the true time of a test. Each scheduler reads it through a
// view with its own skew. A scheduler waits through its view's After; the
// test advances the clock only once every live scheduler waits (quiescent),
// so the run is the same every time and nothing sleeps.
type fakeClock struct {
	mu      sync.Mutex
	cond    *sync.Cond
	now     time.Time
	waiters []*waiter
}

type waiter struct {
	at    time.Time // true time
	ch    chan time.Time
	owner int
}

func newFakeClock(now time.Time) *fakeClock {
	c := &fakeClock{now: now}
	c.cond = sync.NewCond(&c.mu)
	return c
}

// view is one scheduler's clock: the true time plus skew.
type view struct {
	c     *fakeClock
	skew  time.Duration
	owner int
}

func (c *fakeClock) view(owner int, skew time.Duration) view { return view{c, skew, owner} }

func (v view) Now() time.Time {
	v.c.mu.Lock()
	defer v.c.mu.Unlock()
	return v.c.now.Add(v.skew)
}

func (v view) After(d time.Duration) <-chan time.Time {
	c := v.c
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now.Add(v.skew)
		return ch
	}
	c.waiters = append(c.waiters, &waiter{at: c.now.Add(d), ch: ch, owner: v.owner})
	c.cond.Broadcast()
	return ch
}

// advance moves the true time by d and wakes the waiters it reached.
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if w.at.After(c.now) {
			kept = append(kept, w)
			continue
		}
		w.ch <- c.now
	}
	clear(c.waiters[len(kept):])
	c.waiters = kept
}

// drop forgets the waiters of owner (a scheduler that was stopped).
func (c *fakeClock) drop(owner int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if w.owner != owner {
			kept = append(kept, w)
		}
	}
	clear(c.waiters[len(kept):])
	c.waiters = kept
}

// quiesce blocks until n goroutines wait on the clock, failing t when ctx
// ends first (a scheduler that stopped waiting would hang the test).
func (c *fakeClock) quiesce(t testing.TB, ctx context.Context, n int) {
	t.Helper()
	stop := context.AfterFunc(ctx, func() {
		c.mu.Lock()
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	defer stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.waiters) != n {
		if ctx.Err() != nil {
			t.Fatalf("%d goroutines wait on the clock, want %d", len(c.waiters), n)
		}
		c.cond.Wait()
	}
}
