package broker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/memory"
)

// TestDuplicateThroughPublishers: the holder's ID and the DuplicateError
// reach the caller through a Producer (with middleware) and a
// TypedPublisher, and PublishOptions carry the unique fields.
func TestDuplicateThroughPublishers(t *testing.T) {
	ctx := context.Background()
	b := memory.New(&memory.Options{FetchWait: -1})
	defer b.Close()
	var seen error // what the middleware sees
	p := broker.NewProducer(b, header("via", "producer"), func(next broker.PublishFunc) broker.PublishFunc {
		return func(ctx context.Context, ms []broker.Message) ([]string, error) {
			ids, err := next(ctx, ms)
			seen = err
			return ids, err
		}
	})
	first, err := p.Publish(ctx, broker.Message{Topic: "t", UniqueKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	id, err := p.Publish(ctx, broker.Message{Topic: "t", UniqueKey: "k"})
	var de *broker.DuplicateError
	if id != first || !errors.As(err, &de) || de.ID != first {
		t.Fatalf("Producer.Publish of a held key = %q, %v; want %q and a DuplicateError", id, err, first)
	}
	var be *broker.BatchError
	if !errors.As(seen, &be) || len(be.Duplicates) != 1 || be.Duplicates[0] != 0 {
		t.Fatalf("middleware saw %v, want a BatchError with index 0 a duplicate", seen)
	}

	tp := broker.NewTypedPublisher[int](p, "t", nil)
	id, err = tp.Publish(ctx, 1, &broker.PublishOptions{UniqueKey: "k"})
	if id != first || !errors.Is(err, broker.ErrDuplicate) {
		t.Fatalf("TypedPublisher.Publish of a held key = %q, %v", id, err)
	}
	m, err := tp.Message(2, &broker.PublishOptions{UniqueKey: "u", UniqueFor: time.Hour})
	if err != nil || m.UniqueKey != "u" || m.UniqueFor != time.Hour {
		t.Fatalf("Message = %+v, %v; want the unique fields", m, err)
	}
	if _, err := tp.PublishBatch(ctx, []int{1, 2}, &broker.PublishOptions{UniqueKey: "k"}); !errors.Is(err, broker.ErrInvalidMessage) {
		t.Fatalf("PublishBatch of 2 values with one UniqueKey: %v, want ErrInvalidMessage", err)
	}
}

// TestBatchErrorDuplicates: a BatchError matches ErrDuplicate only when
// it has duplicates, and says which indexes failed and which are
// duplicates.
func TestBatchErrorDuplicates(t *testing.T) {
	dup := &broker.DuplicateError{Topic: "t", Key: "k", ID: "j1"}
	failed := &broker.BatchError{Failed: []int{0}, Err: errors.New("boom")}
	if errors.Is(failed, broker.ErrDuplicate) {
		t.Error("a BatchError without duplicates matches ErrDuplicate")
	}
	both := &broker.BatchError{Failed: []int{0}, Duplicates: []int{2}, Err: errors.New("boom")}
	if !errors.Is(both, broker.ErrDuplicate) {
		t.Error("a BatchError with a duplicate does not match ErrDuplicate")
	}
	want := "conveyor: 1 of the batch's messages not confirmed (indexes [0]) and 1 duplicates, not enqueued (indexes [2]): boom"
	if both.Error() != want {
		t.Errorf("Error() = %q, want %q", both.Error(), want)
	}
	only := &broker.BatchError{Duplicates: []int{1}, Err: dup}
	want = `conveyor: 1 of the batch's messages are duplicates, not enqueued (indexes [1]): conveyor: duplicate unique key "k" of topic "t": held by job j1`
	if only.Error() != want {
		t.Errorf("Error() = %q, want %q", only.Error(), want)
	}
}
