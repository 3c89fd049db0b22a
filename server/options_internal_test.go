package server

import (
	"testing"
	"time"
)

func TestOptionDefaults(t *testing.T) {
	o, err := (*Options)(nil).withDefaults(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if o.Concurrency != 10 || o.ShutdownTimeout != 30*time.Second || o.HeartbeatInterval != 10*time.Second ||
		o.Retry != nil || o.Logger == nil || o.AckBatch != 64 || o.AckInterval != 0 ||
		o.ErrorBackoff != (Backoff{Initial: 100 * time.Millisecond, Max: 5 * time.Second}) {
		t.Fatalf("defaults %+v", o)
	}
}

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Initial: 100 * time.Millisecond, Max: 5 * time.Second}
	want := []time.Duration{100, 200, 400, 800, 1600, 3200, 5000, 5000}
	for i, w := range want {
		if got := b.delay(i + 1); got != w*time.Millisecond {
			t.Errorf("delay(%d) = %v, want %v", i+1, got, w*time.Millisecond)
		}
	}
	if got := b.delay(1000); got != 5*time.Second {
		t.Errorf("delay(1000) = %v", got)
	}
}
