package memory_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
)

// TestUniqueTrimReleases: a unique job removed by Trim releases its key,
// so the memory broker needs no safety expiry.
func TestUniqueTrimReleases(t *testing.T) {
	b, _ := newFake(t)
	ctx := context.Background()
	m := broker.Message{Topic: "t", UniqueKey: "k"}
	mustPublish(t, b, m)
	if n, err := b.Trim(ctx, "t", broker.TrimOptions{MaxLen: 1, IncludeUnread: true}); n != 0 || err != nil {
		t.Fatalf("Trim to 1 = %d, %v", n, err)
	}
	mustPublish(t, b, broker.Message{Topic: "t"})
	if n, err := b.Trim(ctx, "t", broker.TrimOptions{MaxLen: 1, IncludeUnread: true}); n != 1 || err != nil {
		t.Fatalf("Trim = %d, %v; want the unique job removed", n, err)
	}
	if _, err := b.Publish(ctx, m); err != nil {
		t.Fatalf("Publish after the holder was trimmed: %v", err)
	}
}

// TestUniqueKeptOnFakeClock: a key kept after the ack ends exactly at
// EnqueuedAt + UniqueFor on the broker's clock.
func TestUniqueKeptOnFakeClock(t *testing.T) {
	b, c := newFake(t)
	ctx := context.Background()
	m := broker.Message{Topic: "t", UniqueKey: "hourly", UniqueFor: time.Hour}
	id := mustPublish(t, b, m)
	c.Advance(10 * time.Minute)
	if err := b.Ack(ctx, mustFetch(t, b, "t", 1)...); err != nil {
		t.Fatal(err)
	}
	c.Advance(50*time.Minute - time.Nanosecond)
	if got, err := b.Publish(ctx, m); !errors.Is(err, broker.ErrDuplicate) || got != id {
		t.Fatalf("Publish just before EnqueuedAt + UniqueFor = %q, %v; want %q and ErrDuplicate", got, err, id)
	}
	c.Advance(time.Nanosecond)
	if _, err := b.Publish(ctx, m); err != nil {
		t.Fatalf("Publish at EnqueuedAt + UniqueFor: %v", err)
	}
}
