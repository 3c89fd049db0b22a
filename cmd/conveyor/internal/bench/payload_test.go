package bench

import (
	"context"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/memory"
)

func TestPayloadRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int
		seq  int
		ts   int64
	}{
		{"smallest", minPayload, 0, 0},
		{"default size", DefaultPayloadSize, 123456, time.Date(2026, 11, 26, 3, 0, 0, 123, time.UTC).UnixNano()},
		{"large", 1024, 9999999999, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPayload(tc.size, tc.seq, tc.ts)
			if len(p) != tc.size {
				t.Fatalf("len %d, want %d", len(p), tc.size)
			}
			if seq, ok := payloadSeq(p); !ok || seq != tc.seq {
				t.Errorf("seq %d %v, want %d", seq, ok, tc.seq)
			}
			if seq, ok := payloadSeq(string(p)); !ok || seq != tc.seq {
				t.Errorf("seq of string %d %v, want %d", seq, ok, tc.seq)
			}
			if ts, ok := payloadTime(p); !ok || ts != tc.ts {
				t.Errorf("ts %d %v, want %d", ts, ok, tc.ts)
			}
		})
	}
	for _, bad := range []string{"", "short", "abcdefghij.0000000000000000000xxxxxxxxxx"} {
		if _, ok := payloadSeq(bad); ok {
			t.Errorf("payloadSeq(%q) accepted", bad)
		}
	}
}

func TestTracker(t *testing.T) {
	tr := newTracker(4)
	for _, seq := range []int{0, 1, 1, 3} {
		tr.mark(newPayload(minPayload, seq, 0))
	}
	tr.markString("not a payload")
	tr.mark(newPayload(minPayload, 9, 0)) // out of range
	calls, missing := tr.count()
	if calls != 6 || missing != 1 {
		t.Errorf("calls %d missing %d, want 6 and 1 (job 2)", calls, missing)
	}
}

func TestAckWatch(t *testing.T) {
	b := memory.New(nil)
	defer b.Close()
	ctx := context.Background()
	if _, err := b.PublishBatch(ctx, []broker.Message{{Topic: "t"}, {Topic: "t"}, {Topic: "t"}}); err != nil {
		t.Fatal(err)
	}
	w := newAckWatch(b, 3)
	var seen int
	w.onAck = func(ds []*broker.Delivery, at time.Time) { seen += len(ds) }
	ds, err := b.Fetch(ctx, []string{"t"}, 3)
	if err != nil || len(ds) != 3 {
		t.Fatalf("fetched %d, %v", len(ds), err)
	}
	if err := w.Ack(ctx, ds[:2]...); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.done:
		t.Fatal("done after 2 of 3 acks")
	default:
	}
	if err := w.Ack(ctx, ds[2]); err != nil {
		t.Fatal(err)
	}
	at, err := w.wait(ctx, time.Second)
	if err != nil || at.IsZero() || seen != 3 {
		t.Errorf("wait: %v %v, onAck saw %d", at, err, seen)
	}
	if info, err := b.Inspect(ctx, "t"); err != nil || info.Length != 0 {
		t.Errorf("acks did not reach the broker: %+v %v", info, err)
	}
}

func TestAckWatchStall(t *testing.T) {
	w := newAckWatch(memory.New(nil), 1)
	defer w.Close()
	_, err := w.wait(context.Background(), 50*time.Millisecond)
	if _, ok := err.(*stallError); !ok {
		t.Fatalf("err %v, want a stall error", err)
	}
}
