package memory_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/memory"
	"github.com/conveyor-jobs/conveyor/internal/clocktest"
)

// TestBatchRetention keeps a complete batch's record for its retention
// after completion, then drops it.
func TestBatchRetention(t *testing.T) {
	ctx := context.Background()
	clock := clocktest.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	b := memory.New(&memory.Options{Now: clock.Now, FetchWait: -1})
	t.Cleanup(func() { _ = b.Close() })
	if err := b.OpenBatch(ctx, broker.BatchSpec{ID: "r", Members: []broker.Message{{Topic: "a", ID: "x"}}, Retention: time.Hour}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Hour) // an open batch is kept
	ds, err := b.Fetch(ctx, []string{"a"}, 1)
	if err != nil || len(ds) != 1 {
		t.Fatalf("fetch: %v %v", ds, err)
	}
	if err := b.Ack(ctx, ds...); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour - time.Millisecond)
	if bi, err := b.BatchInfo(ctx, "r"); err != nil || bi.State != broker.BatchComplete {
		t.Fatalf("within its retention: %+v %v", bi, err)
	}
	clock.Advance(time.Millisecond)
	if _, err := b.BatchInfo(ctx, "r"); !errors.Is(err, broker.ErrNotFound) {
		t.Fatalf("after its retention: %v, want ErrNotFound", err)
	}
}
