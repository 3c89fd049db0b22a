package redis

import (
	"context"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/internal/redistest"
)

func batchTestBroker(t *testing.T, rdb goredis.UniversalClient, ns, consumer string) *Broker {
	t.Helper()
	b, err := New(rdb, &Options{Namespace: ns, Consumer: consumer, Block: 10 * time.Millisecond,
		Lease: 200 * time.Millisecond, ClaimInterval: 20 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func fetchAll(t *testing.T, b *Broker, n int, topics ...string) []*broker.Delivery {
	t.Helper()
	ctx := context.Background()
	var out []*broker.Delivery
	deadline := time.Now().Add(20 * time.Second)
	for len(out) < n {
		if time.Now().After(deadline) {
			t.Fatalf("got %d of %d deliveries of %v", len(out), n, topics)
		}
		ds, err := b.Fetch(ctx, topics, n-len(out))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ds...)
	}
	return out
}

// TestBatchCrashBetweenRecordAndSettle records a member's end and "crashes"
// before its settle: the member is redelivered after its lease, and its
// second end (ack) counts nothing more; the callback comes once.
func TestBatchCrashBetweenRecordAndSettle(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	ctx := context.Background()
	rdb := srv.Client(t)
	a := batchTestBroker(t, rdb, srv.Namespace, "a")
	spec := broker.BatchSpec{ID: "b1", Members: []broker.Message{{Topic: "m", ID: "x"}, {Topic: "m", ID: "y"}},
		Callback: &broker.Message{Topic: "cb"}}
	if err := a.OpenBatch(ctx, spec); err != nil {
		t.Fatal(err)
	}
	ds := fetchAll(t, a, 2, "m")
	// The crash: the last member's end is recorded (completing the batch),
	// then neither the settle nor the callback's enqueue happens.
	ds[0].Result = []byte("first")
	if err := a.Ack(ctx, ds[0]); err != nil {
		t.Fatal(err)
	}
	ds[1].Result = []byte("second")
	due, err := a.recordEnds(ctx, ds[1:], broker.MemberSucceeded, "")
	if err != nil || len(due) != 1 {
		t.Fatalf("record: %v, %v", due, err)
	}
	_ = a.Close()
	b := batchTestBroker(t, rdb, srv.Namespace, "b")
	// The sweeper looks at an open batch again batchSweepInterval after it
	// last saw it: b's clock is that far ahead.
	b.o.Now = func() time.Time { return time.Now().Add(batchSweepInterval) }
	// The sweeper enqueues the callback; the member comes back after its
	// lease; acked again (with another result), it counts nothing.
	got := fetchAll(t, b, 2, "m", "cb")
	var again, cb *broker.Delivery
	for _, d := range got {
		if d.Job.Topic == "cb" {
			cb = d
		} else {
			again = d
		}
	}
	if again == nil || again.Job.ID != ds[1].Job.ID || cb == nil {
		t.Fatalf("after the crash got %s", describeDs(got))
	}
	again.Result = []byte("rerun")
	if err := b.Ack(ctx, again, cb); err != nil {
		t.Fatal(err)
	}
	bi, err := b.BatchInfo(ctx, "b1")
	if err != nil {
		t.Fatal(err)
	}
	if bi.Succeeded != 2 || bi.Total != 2 || string(bi.Results()["y"]) != "second" || bi.CallbackState != broker.CallbackSucceeded {
		t.Fatalf("info %+v", bi)
	}
	if n, err := b.SweepBatches(ctx); err != nil || n != 0 {
		t.Fatalf("second sweep finished %d: %v", n, err)
	}
	if ds, _ := b.Fetch(ctx, []string{"cb", "m"}, 10); len(ds) != 0 {
		t.Fatalf("a second callback or member: %v", ds)
	}
}

// TestBatchCrashBeforeConfirm enqueues the callback and "crashes" before
// the batch is marked finished: the sweeper runs the steps again and the
// callback's unique key makes its second enqueue a no-op.
func TestBatchCrashBeforeConfirm(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	ctx := context.Background()
	b := batchTestBroker(t, srv.Client(t), srv.Namespace, "a")
	if err := b.OpenBatch(ctx, broker.BatchSpec{ID: "b2", Members: []broker.Message{{Topic: "m", ID: "x"}}, Callback: &broker.Message{Topic: "cb"}}); err != nil {
		t.Fatal(err)
	}
	d := fetchAll(t, b, 1, "m")[0]
	if err := b.Ack(ctx, d); err != nil {
		t.Fatal(err)
	}
	cb := fetchAll(t, b, 1, "cb")[0]
	if err := b.Ack(ctx, cb); err != nil {
		t.Fatal(err)
	}
	// Undo the confirmation, as if the enqueuer died right after Publish.
	k := b.batchKeys("b2")
	b.rdb.HSet(ctx, k.meta, "finish", "due", "cbstate", "due")
	b.rdb.ZAdd(ctx, b.batchIndex(), goredis.Z{Score: 0, Member: "b2"})
	if n, err := b.SweepBatches(ctx); err != nil || n != 1 {
		t.Fatalf("sweep finished %d: %v", n, err)
	}
	if ds, _ := b.Fetch(ctx, []string{"cb"}, 10); len(ds) != 0 {
		t.Fatalf("a second callback after the sweep: %v", ds)
	}
	if bi, _ := b.BatchInfo(ctx, "b2"); bi.CallbackState != broker.CallbackEnqueued {
		t.Fatalf("callback state %s", bi.CallbackState)
	}
	if ttl := b.rdb.PTTL(ctx, k.meta).Val(); ttl <= 0 || ttl > broker.DefaultBatchRetention {
		t.Fatalf("retention TTL %v", ttl)
	}
}

// TestBatchCommandsPerMember measures the Redis commands a batch costs per
// member, beyond the same jobs published and acked outside a batch, with
// INFO commandstats (logged; no threshold). Set CONVEYOR_BATCH_MEASURE=N to
// measure N members (default 200).
func TestBatchCommandsPerMember(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	ctx := context.Background()
	rdb := srv.Client(t)
	n := 200
	if v, err := strconv.Atoi(os.Getenv("CONVEYOR_BATCH_MEASURE")); err == nil && v > 0 {
		n = v
	}
	trips := &tripCounter{}
	rdb.AddHook(trips)
	run := func(batch bool) (map[string]int64, int64) {
		b := batchTestBroker(t, rdb, srv.Namespace+strconv.FormatBool(batch), "c")
		trips.n.Store(0)
		defer func() { t.Logf("batch %v: %d round trips", batch, trips.n.Load()) }()
		ms := make([]broker.Message, n)
		for i := range ms {
			ms[i] = broker.Message{Topic: "m", ID: "j" + strconv.Itoa(i), Payload: []byte("p")}
		}
		before := commandStats(t, rdb)
		if batch {
			if err := b.OpenBatch(ctx, broker.BatchSpec{ID: "measure", Members: ms, Callback: &broker.Message{Topic: "cb"}}); err != nil {
				t.Fatal(err)
			}
		} else if _, err := b.PublishBatch(ctx, ms); err != nil {
			t.Fatal(err)
		}
		for done := 0; done < n; {
			ds, err := b.Fetch(ctx, []string{"m"}, 50)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range ds {
				d.Result = []byte("r")
			}
			if err := b.Ack(ctx, ds...); err != nil {
				t.Fatal(err)
			}
			done += len(ds)
		}
		after := commandStats(t, rdb)
		diff := map[string]int64{}
		var total int64
		for c, v := range after {
			if d := v - before[c]; d > 0 && c != "info" {
				diff[c] = d
				total += d
			}
		}
		return diff, total
	}
	plain, pt := run(false)
	batched, bt := run(true)
	t.Logf("%d members: plain publish+fetch+ack %d commands %v; as a batch %d commands %v; extra per member %.2f",
		n, pt, plain, bt, batched, float64(bt-pt)/float64(n))
}

func commandStats(t *testing.T, rdb goredis.UniversalClient) map[string]int64 {
	t.Helper()
	s, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, line := range strings.Split(s, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		calls, _, _ := strings.Cut(strings.TrimPrefix(rest, "calls="), ",")
		v, _ := strconv.ParseInt(calls, 10, 64)
		out[strings.TrimPrefix(name, "cmdstat_")] = v
	}
	return out
}

func describeDs(ds []*broker.Delivery) string {
	var s []string
	for _, d := range ds {
		s = append(s, d.Job.Topic+"/"+d.Job.ID)
	}
	return strings.Join(s, " ")
}

// tripCounter counts round trips: each command or pipeline sent.
type tripCounter struct{ n atomic.Int64 }

func (c *tripCounter) DialHook(next goredis.DialHook) goredis.DialHook { return next }
func (c *tripCounter) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		if cmd.Name() != "info" {
			c.n.Add(1)
		}
		return next(ctx, cmd)
	}
}
func (c *tripCounter) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmds)
	}
}
