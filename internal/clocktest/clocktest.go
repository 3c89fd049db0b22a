// Package clocktest provides the fake clock of conveyor's tests: a time that
// moves only when the test moves it, to pass where code takes a
// func() time.Time (memory.Options.Now, redis.Options.Now, and so on) so
// that tests prove delays, leases and rates without sleeping.
package clocktest

import (
	"sync"
	"time"
)

// Clock is a fake clock. Its methods are safe for concurrent use. Use
// [New]; the zero Clock reads the zero time.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// New returns a clock that reads t until it is advanced.
func New(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's time. Pass the method value c.Now as a clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d (back, for a negative d).
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
