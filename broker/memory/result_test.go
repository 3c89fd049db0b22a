package memory_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/memory"
	"github.com/conveyor-jobs/conveyor/broker/resulttest"
	"github.com/conveyor-jobs/conveyor/internal/clocktest"
)

func TestResults(t *testing.T) {
	resulttest.Run(t, func(t *testing.T) broker.Broker {
		b := memory.New(&memory.Options{FetchWait: 10 * time.Millisecond})
		t.Cleanup(func() { _ = b.Close() })
		return b
	})
}

// TestResultsPartitioned runs the results suite on topics of 4 partitions.
func TestResultsPartitioned(t *testing.T) {
	resulttest.Run(t, func(t *testing.T) broker.Broker {
		b := memory.New(&memory.Options{FetchWait: 10 * time.Millisecond})
		t.Cleanup(func() { _ = b.Close() })
		for _, topic := range []string{"steps", "other"} {
			mustSetPartitions(t, b, topic, 4)
		}
		return b
	})
}

// TestResultRetention proves that a result is kept for exactly
// Options.ResultRetention after the ack, on the broker's clock.
func TestResultRetention(t *testing.T) {
	ctx := context.Background()
	clk := clocktest.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	b := memory.New(&memory.Options{FetchWait: -1, Now: clk.Now, ResultRetention: time.Hour})
	t.Cleanup(func() { _ = b.Close() })
	id, err := b.Publish(ctx, broker.Message{Topic: "steps", Payload: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	ds, err := b.Fetch(ctx, []string{"steps"}, 1)
	if err != nil || len(ds) != 1 {
		t.Fatalf("Fetch = %v, %v", ds, err)
	}
	ds[0].Result = []byte(`"ok"`)
	if err := b.Ack(ctx, ds[0]); err != nil {
		t.Fatal(err)
	}
	js, err := b.JobState(ctx, "steps", id)
	if err != nil {
		t.Fatal(err)
	}
	if want := clk.Now().Add(time.Hour); !js.ExpiresAt.Equal(want) || !js.FinishedAt.Equal(clk.Now()) {
		t.Fatalf("finished %v, expires %v; want %v, %v", js.FinishedAt, js.ExpiresAt, clk.Now(), want)
	}
	clk.Advance(time.Hour - time.Millisecond)
	if _, err := b.JobState(ctx, "steps", id); err != nil {
		t.Fatalf("just before the end of the retention: %v", err)
	}
	clk.Advance(time.Millisecond)
	if js, err := b.JobState(ctx, "steps", id); !errors.Is(err, broker.ErrNotFound) {
		t.Fatalf("after the retention: %+v, %v; want broker.ErrNotFound", js, err)
	}
}
