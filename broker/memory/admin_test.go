package memory_test

import (
	"context"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/memory"
	"github.com/conveyor-jobs/conveyor/internal/clocktest"
	"github.com/conveyor-jobs/conveyor/job"
)

// TestTrimDryRunMatchesTrim builds the same topic on fresh brokers for each
// case and checks that TrimDryRun counts exactly what Trim then removes,
// removing nothing itself: with unread, pending, expired-lease and delayed
// jobs, for every kind of option.
func TestTrimDryRunMatchesTrim(t *testing.T) {
	ctx := context.Background()
	// sixOldFourNew publishes 6 jobs, waits an hour, publishes 4 more.
	sixOldFourNew := func(t *testing.T, b *memory.Broker, c *clocktest.Clock) {
		for range 6 {
			mustPublish(t, b, broker.Message{Topic: "t"})
		}
		c.Advance(time.Hour)
		for range 4 {
			mustPublish(t, b, broker.Message{Topic: "t"})
		}
	}
	// twoPending does the same and leases the 2 oldest jobs.
	twoPending := func(t *testing.T, b *memory.Broker, c *clocktest.Clock) {
		sixOldFourNew(t, b, c)
		if ds, err := b.Fetch(ctx, []string{"t"}, 2); err != nil || len(ds) != 2 {
			t.Fatalf("Fetch = %d jobs, %v; want 2", len(ds), err)
		}
	}
	// leaseExpired lets the 2 leases of twoPending expire: the jobs are
	// ready again for redelivery, still pending in Redis terms.
	leaseExpired := func(t *testing.T, b *memory.Broker, c *clocktest.Clock) {
		twoPending(t, b, c)
		c.Advance(time.Hour)
	}
	// delayed publishes 3 jobs due in an hour and 2 ready ones.
	delayed := func(t *testing.T, b *memory.Broker, _ *clocktest.Clock) {
		for range 3 {
			mustPublish(t, b, broker.Message{Topic: "t", Delay: time.Hour})
		}
		for range 2 {
			mustPublish(t, b, broker.Message{Topic: "t"})
		}
	}
	// deadLettered moves 2 of 3 jobs to t.dlq.
	deadLettered := func(t *testing.T, b *memory.Broker, _ *clocktest.Clock) {
		for range 3 {
			mustPublish(t, b, broker.Message{Topic: "t"})
		}
		ds, err := b.Fetch(ctx, []string{"t"}, 2)
		if err != nil || len(ds) != 2 {
			t.Fatalf("Fetch = %d jobs, %v; want 2", len(ds), err)
		}
		for _, d := range ds {
			if err := b.DeadLetter(ctx, d, job.Failure{Error: "x"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	tests := []struct {
		name  string
		setup func(*testing.T, *memory.Broker, *clocktest.Clock)
		opts  broker.TrimOptions
		want  int64
	}{
		{"unread kept by default", sixOldFourNew, broker.TrimOptions{MaxLen: 3}, 0},
		{"unread kept by default, by age", sixOldFourNew, broker.TrimOptions{OlderThan: time.Minute}, 0},
		{"maxlen", sixOldFourNew, broker.TrimOptions{MaxLen: 3, IncludeUnread: true}, 7},
		{"maxlen above the length", sixOldFourNew, broker.TrimOptions{MaxLen: 20, IncludeUnread: true}, 0},
		{"older than", sixOldFourNew, broker.TrimOptions{OlderThan: time.Minute, IncludeUnread: true}, 6},
		{"older than everything", sixOldFourNew, broker.TrimOptions{OlderThan: 2 * time.Hour, IncludeUnread: true}, 0},
		{"oldest pending, maxlen", twoPending, broker.TrimOptions{MaxLen: 3, IncludeUnread: true}, 0},
		{"oldest pending, older than", twoPending, broker.TrimOptions{OlderThan: time.Minute, IncludeUnread: true}, 0},
		{"oldest lease expired", leaseExpired, broker.TrimOptions{MaxLen: 1, IncludeUnread: true}, 0},
		{"delayed jobs not counted", delayed, broker.TrimOptions{MaxLen: 1, IncludeUnread: true}, 1},
		{"dead letters not counted", deadLettered, broker.TrimOptions{MaxLen: 1, IncludeUnread: true}, 0},
		{"unknown topic", func(*testing.T, *memory.Broker, *clocktest.Clock) {}, broker.TrimOptions{MaxLen: 1, IncludeUnread: true}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, c := newFake(t)
			tt.setup(t, b, c)
			before := length(t, b)
			dry, err := b.TrimDryRun(ctx, "t", tt.opts)
			if err != nil {
				t.Fatalf("TrimDryRun: %v", err)
			}
			if after := length(t, b); after != before {
				t.Fatalf("TrimDryRun changed the length from %d to %d", before, after)
			}
			n, err := b.Trim(ctx, "t", tt.opts)
			if err != nil {
				t.Fatalf("Trim: %v", err)
			}
			if dry != tt.want || n != tt.want {
				t.Errorf("TrimDryRun = %d, Trim removed %d; want %d", dry, n, tt.want)
			}
			if after := length(t, b); after != before-n {
				t.Errorf("Trim removed %d, length went from %d to %d", n, before, after)
			}
		})
	}
}

// length returns the length of topic t (0 when it was never used).
func length(t *testing.T, b *memory.Broker) int64 {
	t.Helper()
	info, err := b.Inspect(context.Background(), "t")
	if err != nil {
		return 0
	}
	return info.Length
}

func TestTrimDryRunOptions(t *testing.T) {
	b, _ := newFake(t)
	for _, o := range []broker.TrimOptions{{}, {MaxLen: 1, OlderThan: time.Second}, {MaxLen: -1}, {OlderThan: -time.Second}} {
		if _, err := b.TrimDryRun(context.Background(), "t", o); err == nil {
			t.Errorf("TrimDryRun(%+v): nil error", o)
		}
	}
}
