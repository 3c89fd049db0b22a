package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/memory"
	"github.com/conveyor-jobs/conveyor/internal/clocktest"
	"github.com/conveyor-jobs/conveyor/internal/logtest"
	"github.com/conveyor-jobs/conveyor/job"
)

// progressCounter is a broker that counts progress writes.
type progressCounter struct {
	*memory.Broker
	mu     sync.Mutex
	writes [][]broker.ProgressUpdate
	fail   error
}

func (c *progressCounter) RecordProgress(_ context.Context, us ...broker.ProgressUpdate) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes = append(c.writes, append([]broker.ProgressUpdate(nil), us...))
	return c.fail
}

// take returns the writes since the last take.
func (c *progressCounter) take() [][]broker.ProgressUpdate {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.writes
	c.writes = nil
	return w
}

// TestProgressThrottle counts the progress writes of one job against a
// fake clock: at most one per ProgressInterval, the latest report wins,
// and a report left unwritten when the job ends is dropped.
func TestProgressThrottle(t *testing.T) {
	mb := memory.New(nil)
	t.Cleanup(func() { _ = mb.Close() })
	pc := &progressCounter{Broker: mb}
	s, err := New(pc, job.HandlerFunc(func(context.Context, *job.Job) error { return nil }), &Options{Topics: []string{"t"}, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	clk := clocktest.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	s.now = clk.Now
	ctx := context.Background()
	w := s.workers[0]
	d := &broker.Delivery{Job: job.Job{ID: "j1", Topic: "t"}, Receipt: "r1"}
	w.rep.begin(d)
	jctx := w.reportCtx(ctx)
	held, holders := []*broker.Delivery{d}, []*worker{w}
	var us []broker.ProgressUpdate
	failing := false
	tick := func() { us = s.progressTick(ctx, held, holders, us[:0], &failing) }
	var reportedAt time.Time
	report := func(n int, msg string) {
		reportedAt = clk.Now()
		for i := range n {
			job.Progress(jctx, float64(i+1)/float64(n), fmt.Sprintf("%s %d", msg, i+1))
		}
	}
	expect := func(what string, want ...string) {
		t.Helper()
		got := pc.take()
		if len(got) != len(want) {
			t.Fatalf("%s: %d writes %v, want %d", what, len(got), got, len(want))
		}
		for i, us := range got {
			if len(us) != 1 || us[0].Delivery != d || us[0].Progress.Message != want[i] || !us[0].Progress.At.Equal(reportedAt) {
				t.Fatalf("%s: write %d = %+v, want %q of the job, reported at %v", what, i, us, want[i], reportedAt)
			}
		}
	}

	tick()
	expect("no report yet")

	report(100, "a")
	tick()
	tick()
	expect("100 reports, two flushes in the same second", "a 100")

	report(100, "b")
	clk.Advance(ProgressInterval - time.Millisecond)
	tick()
	expect("less than a second after the last write")
	clk.Advance(time.Millisecond)
	tick()
	expect("a second after the last write: the latest report", "b 100")

	clk.Advance(time.Hour)
	tick()
	expect("no report since the last write")

	report(3, "c")
	if res := w.rep.end(); res != nil {
		t.Fatalf("result %q recorded by no one", res)
	}
	tick()
	expect("the job ended: its unwritten report is dropped")

	// The next job of the worker starts afresh: its first report is
	// written at the next flush, whenever the last write of the job before.
	d2 := &broker.Delivery{Job: job.Job{ID: "j2", Topic: "t"}, Receipt: "r2"}
	w.rep.begin(d2)
	report(1, "d")
	job.Progress(jctx, 0.5, "latest")
	us = s.progressTick(ctx, held, holders, us[:0], &failing) // held still names d
	expect("a flush that names the job before")
	held[0] = d2
	d = d2
	tick()
	expect("the next job", "latest")
}

// TestProgressWriteFailure: a failed write is logged once until writes
// recover, and the next report is written at the next second.
func TestProgressWriteFailure(t *testing.T) {
	mb := memory.New(nil)
	t.Cleanup(func() { _ = mb.Close() })
	pc := &progressCounter{Broker: mb, fail: errors.New("connection refused")}
	var logs logtest.Buffer
	s, err := New(pc, job.HandlerFunc(func(context.Context, *job.Job) error { return nil }), &Options{Topics: []string{"t"}, Logger: logs.TextLogger(nil)})
	if err != nil {
		t.Fatal(err)
	}
	clk := clocktest.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	s.now = clk.Now
	ctx := context.Background()
	w := s.workers[0]
	d := &broker.Delivery{Job: job.Job{ID: "j", Topic: "t"}, Receipt: "r"}
	w.rep.begin(d)
	jctx := w.reportCtx(ctx)
	failing := false
	for range 3 {
		job.Progress(jctx, 0.1, "x")
		s.progressTick(ctx, []*broker.Delivery{d}, []*worker{w}, nil, &failing)
		clk.Advance(ProgressInterval)
	}
	if n := len(pc.take()); n != 3 {
		t.Fatalf("%d writes, want 3", n)
	}
	if n := strings.Count(logs.String(), "writing job progress failed"); n != 1 {
		t.Fatalf("failure logged %d times, want once", n)
	}
	pc.fail = nil
	job.Progress(jctx, 0.2, "y")
	s.progressTick(ctx, []*broker.Delivery{d}, []*worker{w}, nil, &failing)
	if strings.Count(logs.String(), "writing job progress recovered") != 1 || failing {
		t.Fatal("recovery not logged")
	}
}
