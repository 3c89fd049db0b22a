package redis

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/internal/redistest"
	"github.com/conveyor-jobs/conveyor/job"
)

// TestCRC16: crc16 is Redis Cluster's key hash (CLUSTER KEYSLOT foo is
// 12182; the CRC16/XMODEM check value of "123456789" is 0x31C3).
func TestCRC16(t *testing.T) {
	if got := crc16("123456789"); got != 0x31C3 {
		t.Errorf("crc16(123456789) = %#x, want 0x31c3", got)
	}
	if got := crc16("foo") % clusterSlots; got != 12182 {
		t.Errorf("slot of foo = %d, want 12182", got)
	}
}

// TestPartitionTags: partition i of n has its tag's slot in the i-th n-th
// of the slot space, every tag is distinct (across layouts too), and the
// base topic is read back from the tag.
func TestPartitionTags(t *testing.T) {
	seen := map[string]bool{}
	for _, n := range []int{2, 3, 4, 8, 12, 16, 100, broker.MaxPartitions} {
		for i := range n {
			tag := partitionTag("orders", n, i)
			slot := int(crc16(tag)) % clusterSlots
			if lo, hi := i*clusterSlots/n, (i+1)*clusterSlots/n; slot < lo || slot >= hi {
				t.Fatalf("tag %q of partition %d/%d: slot %d outside [%d, %d)", tag, i, n, slot, lo, hi)
			}
			if seen[tag] {
				t.Fatalf("tag %q twice", tag)
			}
			seen[tag] = true
			if got := tagBase(tag); got != "orders" {
				t.Fatalf("tagBase(%q) = %q", tag, got)
			}
		}
	}
	for _, tag := range []string{"orders", "a#1/2x", "a#3/2", "a#0/1", "x#y/z"} {
		if got := tagBase(tag); got != tag {
			t.Errorf("tagBase(%q) = %q, want it unchanged", tag, got)
		}
	}
}

// TestPartitionKeysAndReceipts: layout 1 is the historical keys with bare
// entry IDs as receipts; a partition's receipt maps back to its keys.
func TestPartitionKeysAndReceipts(t *testing.T) {
	b, err := New(redistest.Start(t).Client(t), &Options{Namespace: "ns"})
	if err != nil {
		t.Fatal(err)
	}
	legacy := b.partKeys("orders", 1, 0)
	if legacy.stream != "ns:{orders}:stream" || legacy.receipt("1-0") != "1-0" {
		t.Fatalf("layout 1: %+v, receipt %q", legacy, legacy.receipt("1-0"))
	}
	k := b.partKeys("orders", 4, 3)
	tag := partitionTag("orders", 4, 3)
	if k.stream != "ns:{"+tag+"}:stream" || k.delayed != "ns:{"+tag+"}:delayed" || k.dlq != "ns:{"+tag+"}:dlq" || k.paused != "ns:{"+tag+"}:paused" {
		t.Fatalf("partition keys %+v", k)
	}
	if b.topicOf(k.stream) != "orders" || b.topicOf(b.partKeys("orders.dlq", 4, 3).stream) != "orders.dlq" {
		t.Fatalf("topicOf(%q) = %q", k.stream, b.topicOf(k.stream))
	}
	r := k.receipt("5-1")
	if r != "5-1@4/3" {
		t.Fatalf("receipt %q", r)
	}
	got, id := b.receiptKeys("orders", r)
	if got.stream != k.stream || id != "5-1" {
		t.Fatalf("receiptKeys(%q) = %s, %q", r, got.stream, id)
	}
	for _, bad := range []string{"5-1", "5-1@4/4", "5-1@1/0", "x@4/1", "5-1@4"} {
		if got, id := b.receiptKeys("orders", bad); got.stream != legacy.stream || id != bad {
			t.Errorf("receiptKeys(%q) = %s, %q; want the historical keys and the receipt as it is", bad, got.stream, id)
		}
	}
}

// TestRetiringLayoutDrained: a layout left by SetPartitions stays
// registered (and read) while it holds jobs or dead letters, and is
// dropped from the registry once drained; Topics lists the topic once.
func TestRetiringLayoutDrained(t *testing.T) {
	old := drainGrace
	drainGrace = 0
	t.Cleanup(func() { drainGrace = old })
	srv := redistest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := New(srv.Client(t), &Options{Namespace: srv.Namespace, Block: 10 * time.Millisecond, ClaimInterval: time.Millisecond, DiscoverInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.Publish(ctx, broker.Message{Topic: "t", Payload: []byte("old")}); err != nil {
		t.Fatal(err)
	}
	if err := b.SetPartitions(ctx, "t", 4); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Publish(ctx, broker.Message{Topic: "t", Payload: []byte("new"), Key: "k"}); err != nil {
		t.Fatal(err)
	}
	retiring := func() []retired {
		t.Helper()
		l, err := b.readLayout(ctx, "t")
		if err != nil {
			t.Fatal(err)
		}
		return l.retiring
	}
	if r := retiring(); len(r) != 1 || r[0].n != 1 {
		t.Fatalf("retiring = %+v, want layout 1", r)
	}
	// The old layout's job is fetched; dead-lettering it keeps the layout.
	var got []*broker.Delivery
	for len(got) < 2 {
		ds, err := b.Fetch(ctx, []string{"t"}, 10)
		if err != nil && ctx.Err() != nil {
			t.Fatal(err)
		}
		got = append(got, ds...)
	}
	for _, d := range got {
		if string(d.Job.Payload) == "old" {
			if err := b.DeadLetter(ctx, d, job.Failure{Error: "x"}); err != nil {
				t.Fatal(err)
			}
		} else if err := b.Ack(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	for range 5 {
		b.forgetLayout("t")
		if _, err := b.Fetch(ctx, []string{"t"}, 10); err != nil && ctx.Err() != nil {
			t.Fatal(err)
		}
	}
	if r := retiring(); len(r) != 1 {
		t.Fatalf("retiring = %+v with a dead letter in it, want it kept", r)
	}
	dls, err := b.DeadLetters(ctx, "t", "", 0)
	if err != nil || len(dls) != 1 || string(dls[0].Job.Payload) != "old" {
		t.Fatalf("DeadLetters = %v, %v; want the old layout's", dls, err)
	}
	if n, err := b.PurgeDeadLetters(ctx, "t", nil); err != nil || n != 1 {
		t.Fatalf("PurgeDeadLetters = %d, %v", n, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(retiring()) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("retiring = %+v after draining, want none", retiring())
		}
		b.mu.Lock()
		clear(b.lastDrain)
		b.mu.Unlock()
		if _, err := b.Fetch(ctx, []string{"t"}, 10); err != nil && ctx.Err() != nil {
			t.Fatal(err)
		}
	}
	// Discovery maps partition keys back to the topic: with the topic
	// registry gone, a fresh broker finds t (from its partitions' keys, the
	// historical ones being drained and gone) and lists it once.
	if _, err := b.Publish(ctx, broker.Message{Topic: "t", Payload: []byte("p"), Key: "k"}); err != nil {
		t.Fatal(err)
	}
	if err := b.rdb.Del(ctx, b.registryKey(), b.keysFor("t").stream).Err(); err != nil {
		t.Fatal(err)
	}
	fresh, err := New(srv.Client(t), &Options{Namespace: srv.Namespace})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	ts, err := fresh.DiscoverTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ts, []string{"t"}) {
		t.Fatalf("DiscoverTopics = %q, want [t]", ts)
	}
}

// TestKeyField: a job without Key is written as before (no key field); a
// job with one carries it in the field key, on a topic of one partition
// too.
func TestKeyField(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	b, err := New(srv.Client(t), &Options{Namespace: srv.Namespace})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, m := range []broker.Message{{Topic: "w", Payload: []byte("a")}, {Topic: "w", Payload: []byte("b"), Key: "tenant-1"}} {
		if _, err := b.Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	ms, err := b.rdb.XRange(ctx, b.keysFor("w").stream, "-", "+").Result()
	if err != nil || len(ms) != 2 {
		t.Fatalf("XRANGE = %v, %v", ms, err)
	}
	if len(ms[0].Values) != 1 || ms[0].Values[fieldPayload] != "a" {
		t.Errorf("entry without Key = %v, want only the payload", ms[0].Values)
	}
	if len(ms[1].Values) != 2 || ms[1].Values[fieldKey] != "tenant-1" {
		t.Errorf("entry with Key = %v, want payload and key", ms[1].Values)
	}
}

// TestPartitionPauseAndInspect: a paused topic's new partitions are paused
// by SetPartitions, Resume resumes them all, and InspectPartitions counts
// each key's jobs in the partition PartitionFor gives it.
func TestPartitionPauseAndInspect(t *testing.T) {
	srv := redistest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := New(srv.Client(t), &Options{Namespace: srv.Namespace, Block: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Pause(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	if err := b.SetPartitions(ctx, "p", 4); err != nil {
		t.Fatal(err)
	}
	want := make([]int64, 4)
	for i := range 20 {
		key := fmt.Sprintf("k%d", i%7)
		want[broker.PartitionFor(key, 4)]++
		if _, err := b.Publish(ctx, broker.Message{Topic: "p", Key: key, Payload: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		if ds, err := b.Fetch(ctx, []string{"p"}, 10); len(ds) > 0 {
			t.Fatalf("Fetch of a paused topic after SetPartitions = %d jobs, %v", len(ds), err)
		}
	}
	ps, err := b.InspectPartitions(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 4 {
		t.Fatalf("InspectPartitions = %+v, want 4 partitions", ps)
	}
	for i, p := range ps {
		if p.Partition != i || p.Length != want[i] || p.Node != "" {
			t.Errorf("partition %d: %+v, want length %d and no node", i, p, want[i])
		}
	}
	info, err := b.Inspect(ctx, "p")
	if err != nil || info.Length != 20 || !info.Paused {
		t.Fatalf("Inspect = %+v, %v; want 20 jobs, paused", info, err)
	}
	if err := b.Resume(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	got := 0
	deadline := time.Now().Add(10 * time.Second)
	for got < 20 {
		if time.Now().After(deadline) {
			t.Fatalf("fetched %d of 20 after Resume", got)
		}
		ds, _ := b.Fetch(ctx, []string{"p"}, 10)
		got += len(ds)
		if err := b.Ack(ctx, ds...); err != nil {
			t.Fatal(err)
		}
	}
}
