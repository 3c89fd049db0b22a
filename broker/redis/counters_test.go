package redis_test

import (
	"context"
	"testing"

	"github.com/conveyor-jobs/conveyor/broker"
)

func TestStreamCounters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.broker(t, "c1", nil)
	ctx := context.Background()
	counters := func(topic string) (int64, int64) {
		t.Helper()
		added, read, err := b.StreamCounters(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		return added, read
	}
	if a, r := counters("none"); a != 0 || r != 0 {
		t.Errorf("a topic without a stream: %d added, %d read; want 0, 0", a, r)
	}
	for range 5 {
		if _, err := b.Publish(ctx, broker.Message{Topic: "count", Payload: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
	}
	if a, r := counters("count"); a != 5 || r != 0 {
		t.Errorf("after 5 publishes: %d added, %d read; want 5, 0", a, r)
	}
	ds := fetchN(t, b, []string{"count"}, 3)
	if err := b.Ack(ctx, ds...); err != nil {
		t.Fatal(err)
	}
	// Acked entries are deleted; the counters keep counting.
	if a, r := counters("count"); a != 5 || r != 3 {
		t.Errorf("after 3 fetched and acked: %d added, %d read; want 5, 3", a, r)
	}
	if _, _, err := b.StreamCounters(ctx, ""); err == nil {
		t.Error("an empty topic is accepted")
	}
}
