package memory_test

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/memory"
	"github.com/conveyor-jobs/conveyor/job"
)

// lags returns the Lag of each partition of topic, by index.
func lags(t *testing.T, b *memory.Broker, topic string) []int64 {
	t.Helper()
	var out []int64
	for _, p := range inspectParts(t, b, topic) {
		out = append(out, p.Lag)
	}
	return out
}

// deadLetters returns the DeadLetters of each partition of topic, by index.
func deadLetters(t *testing.T, b *memory.Broker, topic string) []int64 {
	t.Helper()
	var out []int64
	for _, p := range inspectParts(t, b, topic) {
		out = append(out, p.DeadLetters)
	}
	return out
}

// TestBatchMembersRouted proves that the members a batch publishes on a
// partitioned topic, and its callback, are routed as Publish routes jobs
// (by Key, else in turn), and that the dead letters of members are counted
// in their partition and as dead members of the batch.
func TestBatchMembersRouted(t *testing.T) {
	ctx := context.Background()
	b := memory.New(&memory.Options{FetchWait: -1})
	t.Cleanup(func() { _ = b.Close() })
	mustSetPartitions(t, b, "m", 4)
	mustSetPartitions(t, b, "cb", 4)
	key := keyIn(t, 2, 4, -1, 0)
	cbKey := keyIn(t, 3, 4, -1, 0)
	spec := broker.BatchSpec{ID: "g", Callback: &broker.Message{Topic: "cb", Key: cbKey}}
	for i := range 8 { // two in each partition
		spec.Members = append(spec.Members, broker.Message{Topic: "m", ID: "plain-" + strconv.Itoa(i)})
	}
	for i := range 3 {
		spec.Members = append(spec.Members, broker.Message{Topic: "m", ID: "keyed-" + strconv.Itoa(i), Key: key})
	}
	if err := b.OpenBatch(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if got, want := lags(t, b, "m"), []int64{2, 2, 5, 2}; !slices.Equal(got, want) {
		t.Fatalf("ready per partition %v, want %v", got, want)
	}

	ds, err := b.Fetch(ctx, []string{"m"}, 20)
	if err != nil || len(ds) != 11 {
		t.Fatalf("Fetch = %d deliveries, %v", len(ds), err)
	}
	var keyed []string
	for _, d := range ds {
		if d.Job.Key == "" {
			if err := b.Ack(ctx, d); err != nil {
				t.Fatal(err)
			}
			continue
		}
		keyed = append(keyed, d.Job.ID) // in order within their partition
		if err := b.DeadLetter(ctx, d, job.Failure{Error: "no"}); err != nil {
			t.Fatal(err)
		}
	}
	if want := []string{"keyed-0", "keyed-1", "keyed-2"}; !slices.Equal(keyed, want) {
		t.Fatalf("keyed members came as %v, want %v", keyed, want)
	}
	if got, want := deadLetters(t, b, "m"), []int64{0, 0, 3, 0}; !slices.Equal(got, want) {
		t.Fatalf("dead letters per partition %v, want %v", got, want)
	}
	bi, err := b.BatchInfo(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	if bi.State != broker.BatchComplete || bi.Succeeded != 8 || bi.Dead != 3 || bi.CallbackState != broker.CallbackEnqueued {
		t.Fatalf("batch %+v", bi)
	}
	if got, want := lags(t, b, "cb"), []int64{0, 0, 0, 1}; !slices.Equal(got, want) {
		t.Fatalf("callback ready per partition %v, want %v", got, want)
	}
}

// TestChainLinkDeadLetteredInItsPartition proves that the callback of a
// RequireSuccess batch whose member died (a chain's next link) is
// dead-lettered, once, in the partition it would have been published to,
// and that the dead member and the dead link are recorded in their
// batches.
func TestChainLinkDeadLetteredInItsPartition(t *testing.T) {
	ctx := context.Background()
	b := memory.New(&memory.Options{FetchWait: -1})
	t.Cleanup(func() { _ = b.Close() })
	mustSetPartitions(t, b, "l1", 4)
	mustSetPartitions(t, b, "l2", 4)
	linkKey := keyIn(t, 1, 4, -1, 0)
	// The next link is a member of its own batch, as in a chain.
	next := broker.BatchSpec{ID: "next", Unpublished: true, Members: []broker.Message{{Topic: "l2", ID: "link-2"}}}
	if err := b.OpenBatch(ctx, next); err != nil {
		t.Fatal(err)
	}
	first := broker.BatchSpec{
		ID: "first", RequireSuccess: true,
		Members:  []broker.Message{{Topic: "l1", ID: "link-1"}},
		Callback: &broker.Message{Topic: "l2", ID: "link-2", Key: linkKey, Headers: map[string]string{broker.HeaderBatch: "next"}},
	}
	if err := b.OpenBatch(ctx, first); err != nil {
		t.Fatal(err)
	}
	ds, err := b.Fetch(ctx, []string{"l1"}, 1)
	if err != nil || len(ds) != 1 {
		t.Fatalf("Fetch = %v, %v", ds, err)
	}
	if err := b.DeadLetter(ctx, ds[0], job.Failure{Error: "boom"}); err != nil {
		t.Fatal(err)
	}
	if got, want := deadLetters(t, b, "l2"), []int64{0, 1, 0, 0}; !slices.Equal(got, want) {
		t.Fatalf("dead links per partition %v, want %v", got, want)
	}
	dls, err := b.DeadLetters(ctx, "l2", "", 10)
	if err != nil || len(dls) != 1 {
		t.Fatalf("DeadLetters = %v, %v", dls, err)
	}
	if f := dls[0].Job.Failure; dls[0].Job.ID != "link-2" || f == nil || f.Reason != broker.ReasonChainFailed {
		t.Fatalf("dead link %+v, failure %+v", dls[0].Job, f)
	}
	for id, dead := range map[string]int{"first": 1, "next": 1} {
		bi, err := b.BatchInfo(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if bi.State != broker.BatchComplete || bi.Dead != dead {
			t.Fatalf("batch %s: %+v", id, bi)
		}
	}
	if bi, _ := b.BatchInfo(ctx, "first"); bi.CallbackState != broker.CallbackDeadLettered {
		t.Fatalf("callback of the first batch is %s, want %s", bi.CallbackState, broker.CallbackDeadLettered)
	}
	if js, err := b.JobState(ctx, "l2", "link-2"); err != nil || js.State != broker.StateDead {
		t.Fatalf("JobState(link-2) = %+v, %v", js, err)
	}
}

// TestBatchEndsOnPartitionedTopic proves that a member's end is recorded
// from any partition on every path: the poison limit, a cancel of a queued
// and of a delayed member, and a cancel request honoured by a dead letter.
func TestBatchEndsOnPartitionedTopic(t *testing.T) {
	ctx := context.Background()
	b := memory.New(&memory.Options{FetchWait: -1, MaxDeliveries: 1, Lease: time.Nanosecond})
	t.Cleanup(func() { _ = b.Close() })
	mustSetPartitions(t, b, "p", 4)
	spec := broker.BatchSpec{ID: "poison", Callback: &broker.Message{Topic: "cb"}}
	for i := range 4 {
		spec.Members = append(spec.Members, broker.Message{Topic: "p", ID: "m" + strconv.Itoa(i)})
	}
	if err := b.OpenBatch(ctx, spec); err != nil {
		t.Fatal(err)
	}
	ds, err := b.Fetch(ctx, []string{"p"}, 4)
	if err != nil || len(ds) != 4 {
		t.Fatalf("Fetch = %d, %v", len(ds), err)
	}
	// Every lease has expired: the next Fetch dead-letters them all.
	if ds, err := b.Fetch(ctx, []string{"p"}, 4); err != nil || len(ds) != 0 {
		t.Fatalf("Fetch after the poison limit = %d, %v", len(ds), err)
	}
	if got, want := deadLetters(t, b, "p"), []int64{1, 1, 1, 1}; !slices.Equal(got, want) {
		t.Fatalf("dead letters per partition %v, want %v", got, want)
	}
	bi, err := b.BatchInfo(ctx, "poison")
	if err != nil || bi.State != broker.BatchComplete || bi.Dead != 4 || bi.CallbackState != broker.CallbackEnqueued {
		t.Fatalf("batch %+v, %v", bi, err)
	}

	spec = broker.BatchSpec{ID: "cancel", Callback: &broker.Message{Topic: "cb"}, Members: []broker.Message{
		{Topic: "p", ID: "queued"}, {Topic: "p", ID: "delayed", Delay: time.Hour},
	}}
	if err := b.OpenBatch(ctx, spec); err != nil {
		t.Fatal(err)
	}
	bi, err = b.CancelBatch(ctx, "cancel")
	if err != nil || bi.State != broker.BatchCancelled || bi.Cancelled != 2 || bi.CallbackState != broker.CallbackSkipped {
		t.Fatalf("cancelled batch %+v, %v", bi, err)
	}
	if got, want := deadLetters(t, b, "p"), []int64{2, 2, 1, 1}; !slices.Equal(got, want) {
		t.Fatalf("dead letters per partition after the cancel %v, want %v", got, want)
	}
	// The callback of the first batch was enqueued once, that of the
	// cancelled one never.
	cbs, err := b.Fetch(ctx, []string{"cb"}, 10)
	if err != nil || len(cbs) != 1 || cbs[0].Job.Headers[broker.HeaderBatchCallback] != "poison" {
		t.Fatalf("callbacks %v, %v", cbs, err)
	}
}
