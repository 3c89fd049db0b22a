package memory

import (
	"context"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
)

// TestKeptClaimsDropped: claims kept after their ack are dropped once their
// window ends, by the next Fetch, though their keys are never published
// again; a key taken again meanwhile keeps its new claim.
func TestKeptClaimsDropped(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	b := New(&Options{FetchWait: -1, Now: func() time.Time { return now }})
	defer b.Close()
	ctx := context.Background()
	for _, key := range []string{"a", "b", "c"} {
		if _, err := b.Publish(ctx, broker.Message{Topic: "t", UniqueKey: key, UniqueFor: time.Minute}); err != nil {
			t.Fatal(err)
		}
	}
	ds, err := b.Fetch(ctx, []string{"t"}, 10)
	if err != nil || len(ds) != 3 {
		t.Fatalf("Fetch = %d, %v", len(ds), err)
	}
	if err := b.Ack(ctx, ds...); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Minute)
	// Key b is taken again (its kept claim ended), and must survive.
	if _, err := b.Publish(ctx, broker.Message{Topic: "t", UniqueKey: "b"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Fetch(ctx, []string{"other"}, 1); err != nil {
		t.Fatal(err)
	}
	b.st.mu.Lock()
	defer b.st.mu.Unlock()
	if len(b.st.claims) != 1 || len(b.st.kept) != 0 {
		t.Fatalf("claims %v, kept %v; want only b's new claim", b.st.claims, b.st.kept)
	}
	if _, ok := b.st.claims[claimKey("t", "b")]; !ok {
		t.Fatal("the claim taken again was dropped")
	}
}
