package redis_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
)

// TestDeleteIdleConsumer checks that a consumer is deleted only when it holds
// nothing and has been idle long enough, and that what does not exist is
// ErrNotFound.
func TestDeleteIdleConsumer(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	a := e.broker(t, "a", nil)
	group := a.Options().Group
	if _, err := a.Publish(ctx, broker.Message{Topic: "t", Payload: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	ds := fetchN(t, a, []string{"t"}, 1)
	consumers := func() []string {
		t.Helper()
		cs, err := e.rdb.XInfoConsumers(ctx, e.key("t", "stream"), group).Result()
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, c := range cs {
			names = append(names, c.Name)
		}
		return names
	}

	// Holding an entry: kept, however long the wait asked for.
	if ok, err := a.DeleteIdleConsumer(ctx, "t", group, "a", 0); ok || err != nil {
		t.Fatalf("consumer with a pending entry: deleted %v, %v; want kept", ok, err)
	}
	if err := a.Ack(ctx, ds...); err != nil {
		t.Fatal(err)
	}
	// Nothing held, but active within the hour: kept.
	if ok, err := a.DeleteIdleConsumer(ctx, "t", group, "a", time.Hour); ok || err != nil {
		t.Fatalf("consumer active within the hour: deleted %v, %v; want kept", ok, err)
	}
	if !slices.Contains(consumers(), "a") {
		t.Fatal("consumer a is gone before it was deleted")
	}
	if ok, err := a.DeleteIdleConsumer(ctx, "t", group, "a", 0); !ok || err != nil {
		t.Fatalf("idle consumer holding nothing: deleted %v, %v; want deleted", ok, err)
	}
	if slices.Contains(consumers(), "a") {
		t.Fatal("consumer a is still in the group")
	}
	for _, tt := range []struct{ name, topic, group, consumer string }{
		{"deleted consumer", "t", group, "a"},
		{"unknown group", "t", "nosuch", "a"},
		{"unknown topic", "nosuch", group, "a"},
	} {
		if ok, err := a.DeleteIdleConsumer(ctx, tt.topic, tt.group, tt.consumer, 0); ok || !errors.Is(err, broker.ErrNotFound) {
			t.Errorf("%s: %v, %v; want ErrNotFound", tt.name, ok, err)
		}
	}
	// A deleted consumer that reads again is created again.
	if _, err := a.Publish(ctx, broker.Message{Topic: "t", Payload: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	fetchN(t, a, []string{"t"}, 1)
	if !slices.Contains(consumers(), "a") {
		t.Fatal("consumer a not recreated by a read")
	}
}
