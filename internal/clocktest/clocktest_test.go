package clocktest_test

import (
	"sync"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/internal/clocktest"
)

func TestClock(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	c := clocktest.New(start)
	if got := c.Now(); !got.Equal(start) {
		t.Fatalf("Now = %v, want %v", got, start)
	}
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.Advance(time.Second)
			_ = c.Now()
		}()
	}
	wg.Wait()
	if got, want := c.Now(), start.Add(10*time.Second); !got.Equal(want) {
		t.Fatalf("after 10 Advance(1s): Now = %v, want %v", got, want)
	}
	c.Advance(-time.Minute)
	if got, want := c.Now(), start.Add(-50*time.Second); !got.Equal(want) {
		t.Fatalf("after Advance(-1m): Now = %v, want %v", got, want)
	}
}
