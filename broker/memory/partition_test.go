package memory_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/memory"
	"github.com/conveyor-jobs/conveyor/job"
)

// keyIn returns a key that broker.PartitionFor maps to partition p of n,
// and (when also is at least 0) to partition also of m.
func keyIn(t *testing.T, p, n, also, m int) string {
	t.Helper()
	for i := range 100000 {
		k := "key-" + strconv.Itoa(i)
		if broker.PartitionFor(k, n) == p && (also < 0 || broker.PartitionFor(k, m) == also) {
			return k
		}
	}
	t.Fatalf("no key in partition %d of %d", p, n)
	return ""
}

func mustSetPartitions(t *testing.T, b *memory.Broker, topic string, n int) {
	t.Helper()
	if err := b.SetPartitions(context.Background(), topic, n); err != nil {
		t.Fatalf("SetPartitions(%q, %d): %v", topic, n, err)
	}
}

func inspectParts(t *testing.T, b *memory.Broker, topic string) []broker.PartitionInfo {
	t.Helper()
	ps, err := b.InspectPartitions(context.Background(), topic)
	if err != nil {
		t.Fatalf("InspectPartitions(%q): %v", topic, err)
	}
	return ps
}

// partOf returns the partition whose info holds the only job counted by
// field, failing unless exactly one partition has field 1 and the others 0.
func partOf(t *testing.T, ps []broker.PartitionInfo, field func(broker.PartitionInfo) int64) int {
	t.Helper()
	at := -1
	for _, p := range ps {
		switch field(p) {
		case 0:
		case 1:
			if at >= 0 {
				t.Fatalf("two partitions hold the job: %+v", ps)
			}
			at = p.Partition
		default:
			t.Fatalf("partition %d holds %d jobs, want 0 or 1: %+v", p.Partition, field(p), ps)
		}
	}
	if at < 0 {
		t.Fatalf("no partition holds the job: %+v", ps)
	}
	return at
}

func lag(p broker.PartitionInfo) int64       { return p.Lag }
func pendingOf(p broker.PartitionInfo) int64 { return p.Pending }
func delayedOf(p broker.PartitionInfo) int64 { return p.Delayed }

// SetPartitions accepts 1 to broker.MaxPartitions and rejects anything else
// with an error wrapping ErrInvalidMessage that names the bound; Partitions
// is 1 for a topic never partitioned.
func TestSetPartitionsValidation(t *testing.T) {
	ctx := context.Background()
	b, _ := newFake(t)
	if n, err := b.Partitions(ctx, "never"); err != nil || n != 1 {
		t.Fatalf("Partitions of a new topic = %d, %v; want 1", n, err)
	}
	for _, n := range []int{0, -1, broker.MaxPartitions + 1} {
		err := b.SetPartitions(ctx, "t", n)
		if !errors.Is(err, broker.ErrInvalidMessage) || !strings.Contains(err.Error(), strconv.Itoa(broker.MaxPartitions)) {
			t.Errorf("SetPartitions(%d) = %v, want ErrInvalidMessage naming %d", n, err, broker.MaxPartitions)
		}
	}
	if err := b.SetPartitions(ctx, "", 2); !errors.Is(err, broker.ErrInvalidMessage) {
		t.Errorf("SetPartitions of an empty topic = %v, want ErrInvalidMessage", err)
	}
	if n, _ := b.Partitions(ctx, "t"); n != 1 {
		t.Errorf("Partitions after rejected calls = %d, want 1", n)
	}
	for _, n := range []int{broker.MaxPartitions, 8, 1} {
		mustSetPartitions(t, b, "t", n)
		if got, err := b.Partitions(ctx, "t"); err != nil || got != n {
			t.Errorf("Partitions after SetPartitions(%d) = %d, %v", n, got, err)
		}
	}
	b.Close()
	if err := b.SetPartitions(ctx, "t", 2); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("SetPartitions after Close = %v, want ErrClosed", err)
	}
}

// Publish routes a job with a Key by broker.PartitionFor(Key, n), a unique
// job without one by its UniqueKey, and spreads the others in turn.
func TestPartitionRouting(t *testing.T) {
	b, _ := newFake(t)
	mustSetPartitions(t, b, "t", 8)
	for i := range 16 {
		mustPublish(t, b, broker.Message{Topic: "t", Payload: []byte(strconv.Itoa(i))})
	}
	for _, p := range inspectParts(t, b, "t") {
		if p.Lag != 2 {
			t.Fatalf("16 jobs without a key on 8 partitions: %+v, want 2 each", inspectParts(t, b, "t"))
		}
	}
	mustFetchAll(t, b, "t", 16)

	for _, k := range []string{"tenant-1", "tenant-2", "conversation-77"} {
		mustPublish(t, b, broker.Message{Topic: "t", Key: k})
		if got, want := partOf(t, inspectParts(t, b, "t"), lag), broker.PartitionFor(k, 8); got != want {
			t.Errorf("job with Key %q in partition %d, want %d", k, got, want)
		}
		mustFetchAll(t, b, "t", 1)
	}
	mustPublish(t, b, broker.Message{Topic: "t", UniqueKey: "order-9"})
	if got, want := partOf(t, inspectParts(t, b, "t"), lag), broker.PartitionFor("order-9", 8); got != want {
		t.Errorf("unique job in partition %d, want %d (its UniqueKey's)", got, want)
	}
	mustFetchAll(t, b, "t", 1)
	// The Key wins over the UniqueKey.
	mustPublish(t, b, broker.Message{Topic: "t", UniqueKey: "order-10", Key: "tenant-1"})
	if got, want := partOf(t, inspectParts(t, b, "t"), lag), broker.PartitionFor("tenant-1", 8); got != want {
		t.Errorf("unique job with a Key in partition %d, want %d (its Key's)", got, want)
	}
	// PublishBatch routes the same way.
	mustFetchAll(t, b, "t", 1)
	if _, err := b.PublishBatch(context.Background(), []broker.Message{{Topic: "t", Key: "conversation-77"}}); err != nil {
		t.Fatal(err)
	}
	if got, want := partOf(t, inspectParts(t, b, "t"), lag), broker.PartitionFor("conversation-77", 8); got != want {
		t.Errorf("batch job with a Key in partition %d, want %d", got, want)
	}
}

// mustFetchAll fetches exactly want jobs of topic (in batches) and acks them.
func mustFetchAll(t *testing.T, b *memory.Broker, topic string, want int) []*broker.Delivery {
	t.Helper()
	var all []*broker.Delivery
	for {
		ds, err := b.Fetch(context.Background(), []string{topic}, 50)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 0 {
			break
		}
		if err := b.Ack(context.Background(), ds...); err != nil {
			t.Fatal(err)
		}
		all = append(all, ds...)
	}
	if len(all) != want {
		t.Fatalf("fetched %d jobs of %q, want %d", len(all), topic, want)
	}
	return all
}

// On 8 partitions, the jobs of each key are delivered in the order they
// were published, whatever the batch sizes, the interleaving of keys and
// jobs without a key, or the consumers fetching.
func TestPartitionKeyFIFO(t *testing.T) {
	ctx := context.Background()
	b, _ := newFake(t)
	mustSetPartitions(t, b, "t", 8)
	const keys, perKey = 24, 40
	var batch []broker.Message
	for i := range perKey {
		for k := range keys {
			m := broker.Message{Topic: "t", Key: "k" + strconv.Itoa(k), Payload: []byte(strconv.Itoa(i))}
			if len(batch) == 7 || (i+k)%3 == 0 {
				if _, err := b.PublishBatch(ctx, batch); err != nil {
					t.Fatal(err)
				}
				batch = batch[:0]
			}
			if (i+k)%3 == 0 {
				mustPublish(t, b, m)
			} else {
				batch = append(batch, m)
			}
		}
		mustPublish(t, b, broker.Message{Topic: "t", Payload: []byte("none")})
	}
	if _, err := b.PublishBatch(ctx, batch); err != nil {
		t.Fatal(err)
	}
	views := []*memory.Broker{b, b.Consumer("c1"), b.Consumer("c2")}
	next := map[string]int{}
	none := 0
	for round := 0; ; round++ {
		v := views[round%len(views)]
		ds, err := v.Fetch(ctx, []string{"t"}, 1+round%13)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 0 {
			break
		}
		for _, d := range ds {
			if d.Job.Key == "" {
				none++
				continue
			}
			if got := string(d.Job.Payload); got != strconv.Itoa(next[d.Job.Key]) {
				t.Fatalf("key %s: got job %s, want %d", d.Job.Key, got, next[d.Job.Key])
			}
			next[d.Job.Key]++
		}
		if err := v.Ack(ctx, ds...); err != nil {
			t.Fatal(err)
		}
	}
	for k := range keys {
		if n := next["k"+strconv.Itoa(k)]; n != perKey {
			t.Errorf("key k%d: %d jobs delivered, want %d", k, n, perKey)
		}
	}
	if none != perKey {
		t.Errorf("%d jobs without a key delivered, want %d", none, perKey)
	}
}

// fairnessBacklog is the long partition's backlog in the fairness tests.
const fairnessBacklog = 100_000

// A Fetch serves the partitions of a topic in turn: a partition with one
// ready job gets it delivered in the same Fetch as a partition with a long
// backlog, for any max of at least 2, whichever partition's turn it was.
func TestPartitionFairness(t *testing.T) {
	ctx := context.Background()
	b, _ := newFake(t)
	mustSetPartitions(t, b, "t", 2)
	long, short := keyIn(t, 0, 2, -1, 0), keyIn(t, 1, 2, -1, 0)
	ms := make([]broker.Message, 1000)
	for i := range ms {
		ms[i] = broker.Message{Topic: "t", Key: long}
	}
	for range fairnessBacklog / len(ms) {
		if _, err := b.PublishBatch(ctx, ms); err != nil {
			t.Fatal(err)
		}
	}
	for i, max := range []int{2, 3, 64, 1000} {
		// Move the turn around: after i single fetches the long partition
		// may or may not be next.
		for range i {
			ds, err := b.Fetch(ctx, []string{"t"}, 1)
			if err != nil || len(ds) != 1 {
				t.Fatalf("Fetch = %d, %v", len(ds), err)
			}
			if err := b.Ack(ctx, ds...); err != nil {
				t.Fatal(err)
			}
		}
		id := mustPublish(t, b, broker.Message{Topic: "t", Key: short})
		ds, err := b.Fetch(ctx, []string{"t"}, max)
		if err != nil || len(ds) != max {
			t.Fatalf("Fetch(%d) = %d jobs, %v", max, len(ds), err)
		}
		if !slices.ContainsFunc(ds, func(d *broker.Delivery) bool { return d.Job.ID == id }) {
			t.Errorf("Fetch(%d) did not deliver the short partition's job behind a backlog of %d", max, fairnessBacklog)
		}
		if err := b.Ack(ctx, ds...); err != nil {
			t.Fatal(err)
		}
	}
}

// Weights and strict priorities are between topics; the partitions of a
// topic share its turn, in turn.
func TestPartitionFairnessWithPriorities(t *testing.T) {
	ctx := context.Background()
	b, _ := newFake(t)
	mustSetPartitions(t, b, "x", 2)
	long, short := keyIn(t, 0, 2, -1, 0), keyIn(t, 1, 2, -1, 0)
	fill := func() string {
		for range 100 {
			mustPublish(t, b, broker.Message{Topic: "x", Key: long})
			mustPublish(t, b, broker.Message{Topic: "y"})
		}
		return mustPublish(t, b, broker.Message{Topic: "x", Key: short})
	}
	count := func(ds []*broker.Delivery, topic string) int {
		n := 0
		for _, d := range ds {
			if d.Job.Topic == topic {
				n++
			}
		}
		return n
	}
	has := func(ds []*broker.Delivery, id string) bool {
		return slices.ContainsFunc(ds, func(d *broker.Delivery) bool { return d.Job.ID == id })
	}
	drain := func() {
		for {
			ds, err := b.Fetch(ctx, []string{"x", "y"}, 100)
			if err != nil {
				t.Fatal(err)
			}
			if len(ds) == 0 {
				return
			}
			if err := b.Ack(ctx, ds...); err != nil {
				t.Fatal(err)
			}
		}
	}

	id := fill()
	ds, err := b.FetchWeighted(ctx, []broker.TopicWeight{{Topic: "x", Weight: 1}, {Topic: "y", Weight: 1}}, 4, false)
	if err != nil || len(ds) != 4 {
		t.Fatalf("FetchWeighted = %d, %v", len(ds), err)
	}
	if count(ds, "x") != 2 || !has(ds, id) {
		t.Errorf("weighted 1:1 fetch of 4: %d of x (want 2), short partition's job delivered %v (want true)", count(ds, "x"), has(ds, id))
	}
	drain()

	id = fill()
	ds, err = b.FetchWeighted(ctx, []broker.TopicWeight{{Topic: "y", Weight: 1}, {Topic: "x", Weight: 5}}, 2, true)
	if err != nil || len(ds) != 2 {
		t.Fatalf("strict FetchWeighted = %d, %v", len(ds), err)
	}
	if count(ds, "x") != 2 || !has(ds, id) {
		t.Errorf("strict fetch of 2: %d of x (want 2), short partition's job delivered %v (want true)", count(ds, "x"), has(ds, id))
	}
	drain()

	id = fill()
	ds, err = b.Fetch(ctx, []string{"y", "x"}, 4)
	if err != nil || len(ds) != 4 {
		t.Fatalf("Fetch = %d, %v", len(ds), err)
	}
	if count(ds, "x") != 2 || !has(ds, id) {
		t.Errorf("Fetch of 4 from two topics: %d of x (want 2), short partition's job delivered %v (want true)", count(ds, "x"), has(ds, id))
	}
}

// ledger records what happened to every job of a resize test.
type ledger struct {
	t         *testing.T
	b         *memory.Broker
	published map[string]bool
	acked     map[string]int
}

func (l *ledger) publish(m broker.Message) {
	l.t.Helper()
	id := mustPublish(l.t, l.b, m)
	l.published[id] = true
}

// fetch fetches up to max jobs, checking that each was published.
func (l *ledger) fetch(max int) []*broker.Delivery {
	l.t.Helper()
	ds, err := l.b.Fetch(context.Background(), []string{"t"}, max)
	if err != nil {
		l.t.Fatal(err)
	}
	for _, d := range ds {
		if !l.published[d.Job.ID] {
			l.t.Fatalf("delivered job %s that was never published", d.Job.ID)
		}
	}
	return ds
}

func (l *ledger) ack(ds ...*broker.Delivery) {
	l.t.Helper()
	if err := l.b.Ack(context.Background(), ds...); err != nil {
		l.t.Fatal(err)
	}
	for _, d := range ds {
		l.acked[d.Job.ID]++
	}
}

// drain fetches and acks until nothing is ready.
func (l *ledger) drain() {
	l.t.Helper()
	for {
		ds := l.fetch(7)
		if len(ds) == 0 {
			return
		}
		l.ack(ds...)
	}
}

// check verifies that every published job was acked exactly once.
func (l *ledger) check() {
	l.t.Helper()
	for id := range l.published {
		if l.acked[id] != 1 {
			l.t.Errorf("job %s acked %d times, want 1", id, l.acked[id])
		}
	}
	for id := range l.acked {
		if !l.published[id] {
			l.t.Errorf("acked job %s that was never published", id)
		}
	}
}

// Changing the partition count (1 to 8, then 8 to 2) with jobs ready,
// leased, delayed, retried, snoozed and with expired leases loses none:
// every job published is acked exactly once.
func TestPartitionResize(t *testing.T) {
	ctx := context.Background()
	b, clock := newFake(t)
	l := &ledger{t: t, b: b, published: map[string]bool{}, acked: map[string]int{}}
	publish := func(n int, delay time.Duration) {
		for i := range n {
			k := ""
			if i%3 != 0 {
				k = "k" + strconv.Itoa(i%5)
			}
			l.publish(broker.Message{Topic: "t", Key: k, Delay: delay})
		}
	}
	// settle retries the first third of ds, snoozes the second and acks the
	// rest.
	settle := func(ds []*broker.Delivery) {
		for i, d := range ds {
			switch i % 3 {
			case 0:
				if err := b.Retry(ctx, d, time.Second, job.Failure{Error: "again"}); err != nil {
					t.Fatal(err)
				}
			case 1:
				if err := b.Snooze(ctx, d, 2*time.Second); err != nil {
					t.Fatal(err)
				}
			default:
				l.ack(d)
			}
		}
	}
	resize := func(from, to int) {
		publish(30, 0)
		publish(10, time.Second)
		inflight := l.fetch(12)
		lost := l.fetch(3) // their leases will expire
		if len(inflight) != 12 || len(lost) != 3 {
			t.Fatalf("fetched %d and %d jobs, want 12 and 3", len(inflight), len(lost))
		}
		mustSetPartitions(t, b, "t", to)
		if ps := inspectParts(t, b, "t"); from > to && len(ps) <= to {
			t.Errorf("after %d → %d, InspectPartitions lists %d partitions, want the retired ones holding jobs too: %+v", from, to, len(ps), ps)
		} else {
			for _, p := range ps {
				if p.Draining != (p.Partition >= to) {
					t.Errorf("after %d → %d, partition %d draining %v", from, to, p.Partition, p.Draining)
				}
			}
		}
		publish(30, 0)
		publish(10, 3*time.Second)
		settle(inflight)
		l.drain()
		clock.Advance(4 * time.Second)
		l.drain()
		clock.Advance(2 * time.Minute)
		l.drain()
		info, err := b.Inspect(ctx, "t")
		if err != nil {
			t.Fatal(err)
		}
		if info.Length != 0 || info.Delayed != 0 {
			t.Fatalf("after draining: %+v", info)
		}
		if ps := inspectParts(t, b, "t"); len(ps) != to {
			t.Errorf("after draining, InspectPartitions lists %d partitions, want %d: %+v", len(ps), to, ps)
		}
	}
	resize(1, 8)
	resize(8, 2)
	resize(2, 2)
	l.check()
	if len(l.published) != 3*80 {
		t.Errorf("published %d jobs, want %d", len(l.published), 3*80)
	}
}

// A job's retries and snoozes stay in the partition it was published to,
// even after the count changes to one that maps its key elsewhere; that
// partition is listed while it holds them.
func TestPartitionRetryStays(t *testing.T) {
	ctx := context.Background()
	b, clock := newFake(t)
	mustSetPartitions(t, b, "t", 8)
	k := keyIn(t, 5, 8, 1, 2) // partition 5 of 8, partition 1 of 2
	mustPublish(t, b, broker.Message{Topic: "t", Key: k})
	ds := mustFetch(t, b, "t", 1)
	mustSetPartitions(t, b, "t", 2)
	if p := partOf(t, inspectParts(t, b, "t"), pendingOf); p != 5 {
		t.Fatalf("leased job in partition %d, want 5", p)
	}
	if err := b.Retry(ctx, ds[0], time.Second, job.Failure{Error: "x"}); err != nil {
		t.Fatal(err)
	}
	if p := partOf(t, inspectParts(t, b, "t"), delayedOf); p != 5 {
		t.Errorf("retried job delayed in partition %d, want 5", p)
	}
	clock.Advance(time.Second)
	if p := partOf(t, inspectParts(t, b, "t"), lag); p != 5 {
		t.Errorf("retried job ready in partition %d, want 5", p)
	}
	ds = mustFetch(t, b, "t", 1)
	if err := b.Snooze(ctx, ds[0], 0); err != nil {
		t.Fatal(err)
	}
	if p := partOf(t, inspectParts(t, b, "t"), lag); p != 5 {
		t.Errorf("snoozed job ready in partition %d, want 5", p)
	}
	ds = mustFetch(t, b, "t", 1)
	if ds[0].Job.Key != k || ds[0].Job.Attempt != 2 {
		t.Errorf("redelivered job: Key %q attempt %d, want %q and 2", ds[0].Job.Key, ds[0].Job.Attempt, k)
	}
	if err := b.Ack(ctx, ds...); err != nil {
		t.Fatal(err)
	}
	if ps := inspectParts(t, b, "t"); len(ps) != 2 {
		t.Errorf("an emptied retired partition is still listed: %+v", ps)
	}
}

// Inspect describes the partitioned topic as one; InspectPartitions breaks
// it down and its counts add up to Inspect's.
func TestInspectPartitions(t *testing.T) {
	ctx := context.Background()
	b, _ := newFake(t)
	if _, err := b.InspectPartitions(ctx, "t"); !errors.Is(err, broker.ErrNotFound) {
		t.Errorf("InspectPartitions of an unknown topic = %v, want ErrNotFound", err)
	}
	mustPublish(t, b, broker.Message{Topic: "plain"})
	if ps := inspectParts(t, b, "plain"); len(ps) != 1 || ps[0] != (broker.PartitionInfo{Partition: 0, Length: 1, Lag: 1}) {
		t.Errorf("InspectPartitions of a topic never partitioned = %+v", ps)
	}
	mustSetPartitions(t, b, "t", 4)
	keys := []string{keyIn(t, 0, 4, -1, 0), keyIn(t, 1, 4, -1, 0), keyIn(t, 2, 4, -1, 0), keyIn(t, 3, 4, -1, 0)}
	// Partition p gets p+1 ready jobs, one more fetched (p of them leased
	// after the fetch below), 2 delayed, and p dead letters.
	for p, k := range keys {
		for range 2*p + 2 {
			mustPublish(t, b, broker.Message{Topic: "t", Key: k})
		}
		for range 2 {
			mustPublish(t, b, broker.Message{Topic: "t", Key: k, Delay: time.Hour})
		}
	}
	leased := map[string][]*broker.Delivery{}
	for {
		ds, err := b.Fetch(ctx, []string{"t"}, 1)
		if err != nil || len(ds) != 1 {
			t.Fatalf("Fetch = %d, %v", len(ds), err)
		}
		k := ds[0].Job.Key
		leased[k] = append(leased[k], ds[0])
		if len(leased[keys[3]]) == 4 {
			break
		}
	}
	// Round robin took 4 of partition 3 and 4 of every other partition
	// that had them: partition 0 had 2.
	for p, k := range keys {
		ds := leased[k]
		if len(ds) != min(4, 2*p+2) {
			t.Fatalf("partition %d: %d leased, want %d", p, len(ds), min(4, 2*p+2))
		}
		for i := range p {
			if err := b.DeadLetter(ctx, ds[i], job.Failure{Error: "bad"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	ps := inspectParts(t, b, "t")
	want := []broker.PartitionInfo{
		{Partition: 0, Length: 2, Pending: 2, Lag: 0, Delayed: 2, DeadLetters: 0},
		{Partition: 1, Length: 3, Pending: 3, Lag: 0, Delayed: 2, DeadLetters: 1},
		{Partition: 2, Length: 4, Pending: 2, Lag: 2, Delayed: 2, DeadLetters: 2},
		{Partition: 3, Length: 5, Pending: 1, Lag: 4, Delayed: 2, DeadLetters: 3},
	}
	if !slices.Equal(ps, want) {
		t.Fatalf("InspectPartitions =\n%+v\nwant\n%+v", ps, want)
	}
	info, err := b.Inspect(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	var sum broker.PartitionInfo
	for _, p := range ps {
		sum.Length += p.Length
		sum.Pending += p.Pending
		sum.Lag += p.Lag
		sum.Delayed += p.Delayed
		sum.DeadLetters += p.DeadLetters
	}
	if info.Length != sum.Length || info.Pending != sum.Pending || info.Lag != sum.Lag || info.Delayed != sum.Delayed || info.DeadLetters != sum.DeadLetters {
		t.Errorf("Inspect = %+v, want the sums %+v", info, sum)
	}

	// Lowering the count keeps listing the partitions that hold jobs, and
	// drops each once it is empty (dead letters included).
	mustSetPartitions(t, b, "t", 2)
	if ps := inspectParts(t, b, "t"); len(ps) != 4 {
		t.Errorf("after lowering to 2: %d partitions listed, want 4", len(ps))
	}
	mustSetPartitions(t, b, "t", 1)
	for _, ds := range leased {
		if err := b.Ack(ctx, ds...); err != nil { // the dead letters' are ignored
			t.Fatal(err)
		}
	}
	mustFetchAll(t, b, "t", 6)
	for _, dj := range mustDelayed(t, b, "t") {
		if err := b.DeleteDelayed(ctx, "t", dj.Job.ID); err != nil {
			t.Fatal(err)
		}
	}
	ps = inspectParts(t, b, "t")
	if len(ps) != 4 || ps[3].DeadLetters != 3 || ps[3].Length != 0 {
		t.Errorf("with only dead letters left: %+v, want 4 partitions, 3 dead letters in partition 3", ps)
	}
	if n, err := b.PurgeDeadLetters(ctx, "t", nil); err != nil || n != 6 {
		t.Fatalf("PurgeDeadLetters = %d, %v; want 6", n, err)
	}
	if ps := inspectParts(t, b, "t"); len(ps) != 1 || ps[0] != (broker.PartitionInfo{}) {
		t.Errorf("emptied topic of 1 partition: %+v", ps)
	}
}

func mustDelayed(t *testing.T, b *memory.Broker, topic string) []broker.DelayedJob {
	t.Helper()
	djs, err := b.DelayedJobs(context.Background(), topic, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return djs
}

// A job's Key is on every delivery and survives retry, snooze, delay,
// dead-letter and replay; a replayed dead letter goes back to its
// partition. Dead letters of several partitions are listed, replayed and
// purged as one topic.
func TestPartitionKeySurvives(t *testing.T) {
	ctx := context.Background()
	b, clock := newFake(t)
	mustSetPartitions(t, b, "t", 4)
	keys := []string{keyIn(t, 1, 4, -1, 0), keyIn(t, 3, 4, -1, 0)}
	ids := []string{
		mustPublish(t, b, broker.Message{Topic: "t", Key: keys[0]}),
		mustPublish(t, b, broker.Message{Topic: "t", Key: keys[1], Delay: time.Second}),
	}
	if djs := mustDelayed(t, b, "t"); len(djs) != 1 || djs[0].Job.Key != keys[1] {
		t.Errorf("DelayedJobs = %+v, want the job with Key %q", djs, keys[1])
	}
	clock.Advance(time.Second)
	byKey := func(ds []*broker.Delivery) map[string]*broker.Delivery {
		m := map[string]*broker.Delivery{}
		for _, d := range ds {
			m[d.Job.Key] = d
		}
		if len(m) != len(keys) || m[keys[0]] == nil || m[keys[1]] == nil {
			t.Fatalf("deliveries' keys: %v, want %v", slices.Collect(func(yield func(string) bool) {
				for _, d := range ds {
					yield(d.Job.Key)
				}
			}), keys)
		}
		return m
	}
	ds := byKey(mustFetch(t, b, "t", 2))
	for _, d := range ds {
		if err := b.Retry(ctx, d, 0, job.Failure{Error: "retry"}); err != nil {
			t.Fatal(err)
		}
	}
	ds = byKey(mustFetch(t, b, "t", 2))
	for _, d := range ds {
		if err := b.Snooze(ctx, d, 0); err != nil {
			t.Fatal(err)
		}
	}
	ds = byKey(mustFetch(t, b, "t", 2))
	for _, k := range keys {
		if err := b.DeadLetter(ctx, ds[k], job.Failure{Error: "dead"}); err != nil {
			t.Fatal(err)
		}
	}
	dls, err := b.DeadLetters(ctx, "t", "", 0)
	if err != nil || len(dls) != 2 {
		t.Fatalf("DeadLetters = %d, %v; want 2", len(dls), err)
	}
	for i, dl := range dls {
		if dl.Job.ID != ids[i] || dl.Job.Key != keys[i] {
			t.Errorf("dead letter %d: ID %s Key %q, want %s and %q", i, dl.Job.ID, dl.Job.Key, ids[i], keys[i])
		}
	}
	ps := inspectParts(t, b, "t")
	if ps[1].DeadLetters != 1 || ps[3].DeadLetters != 1 {
		t.Errorf("dead letters not counted in their partitions: %+v", ps)
	}
	// Fetched from the dead-letter topic, they keep their key.
	byKey(mustFetch(t, b, job.DeadLetterTopic("t"), 2))
	clock.Advance(2 * time.Minute) // the leases expire: they are dead letters again
	// Replay all (as one topic), after lowering the count: each goes back to
	// the partition it died in.
	mustSetPartitions(t, b, "t", 1)
	if n, err := b.ReplayDeadLetters(ctx, "t", nil); err != nil || n != 2 {
		t.Fatalf("ReplayDeadLetters = %d, %v; want 2", n, err)
	}
	ps = inspectParts(t, b, "t")
	if len(ps) != 3 || ps[1].Partition != 1 || ps[1].Lag != 1 || ps[2].Partition != 3 || ps[2].Lag != 1 {
		t.Errorf("replayed jobs not back in partitions 1 and 3: %+v", ps)
	}
	ds = byKey(mustFetch(t, b, "t", 2))
	for i, k := range keys {
		if d := ds[k]; d.Job.ID != ids[i] || d.Job.Attempt != 1 || d.Job.Failure != nil {
			t.Errorf("replayed job: %+v", d.Job)
		}
	}
}

// Trim on a partitioned topic takes the oldest unread jobs of all its
// partitions together, and TrimDryRun counts exactly those.
func TestPartitionTrim(t *testing.T) {
	ctx := context.Background()
	b, _ := newFake(t)
	mustSetPartitions(t, b, "t", 4)
	var ids []string
	for i := range 20 {
		ids = append(ids, mustPublish(t, b, broker.Message{Topic: "t", Payload: []byte(fmt.Sprint(i))}))
	}
	opts := broker.TrimOptions{MaxLen: 8, IncludeUnread: true}
	if n, err := b.TrimDryRun(ctx, "t", opts); err != nil || n != 12 {
		t.Fatalf("TrimDryRun = %d, %v; want 12", n, err)
	}
	if n, err := b.Trim(ctx, "t", opts); err != nil || n != 12 {
		t.Fatalf("Trim = %d, %v; want 12", n, err)
	}
	var left []string
	for _, d := range mustFetchAll(t, b, "t", 8) {
		left = append(left, d.Job.ID)
	}
	slices.Sort(left)
	want := slices.Clone(ids[12:])
	slices.Sort(want)
	if !slices.Equal(left, want) {
		t.Errorf("Trim kept %v, want the newest 8 %v", left, want)
	}
}
