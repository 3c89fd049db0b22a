package redis_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/redis"
	"github.com/conveyor-jobs/conveyor/internal/redistest"
	"github.com/conveyor-jobs/conveyor/job"
)

// TestUniqueWire pins what a unique job writes: its stream entry carries
// unique_key and unique_for_ms, and the claim <ns>:{<topic>}:unique:<key>
// holds its ID with the safety TTL; the ack makes a kept claim expire at
// EnqueuedAt + UniqueFor, and deletes a claim without UniqueFor.
func TestUniqueWire(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	b := e.broker(t, "c1", func(o *redis.Options) { o.UniqueClaimTTL = time.Hour })
	id, err := b.Publish(ctx, broker.Message{Topic: "w", Payload: []byte("p"), UniqueKey: "daily report", UniqueFor: 90 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	claim := e.key("w", "unique:daily report")
	if got, _ := e.rdb.Get(ctx, claim).Result(); got != id {
		t.Fatalf("claim %s holds %q, want the job ID %q", claim, got, id)
	}
	if ttl := e.rdb.PTTL(ctx, claim).Val(); ttl <= 0 || ttl > time.Hour {
		t.Fatalf("claim TTL %v, want the safety TTL (1h)", ttl)
	}
	msgs := e.rdb.XRange(ctx, e.key("w", "stream"), "-", "+").Val()
	if len(msgs) != 1 || msgs[0].Values["unique_key"] != "daily report" || msgs[0].Values["unique_for_ms"] != "5400000" {
		t.Fatalf("stream entry %+v, want unique_key and unique_for_ms", msgs)
	}

	d := fetchN(t, b, []string{"w"}, 1)[0]
	if err := b.Ack(ctx, d); err != nil {
		t.Fatal(err)
	}
	want := d.Job.EnqueuedAt.Add(90 * time.Minute).UnixMilli()
	if at := e.rdb.Do(ctx, "PEXPIRETIME", claim).Val(); at != want {
		t.Fatalf("acked claim expires at %v, want EnqueuedAt + UniqueFor = %d", at, want)
	}

	// Without UniqueFor the ack deletes the claim.
	if _, err := b.Publish(ctx, broker.Message{Topic: "w", Payload: []byte("p"), UniqueKey: "once"}); err != nil {
		t.Fatal(err)
	}
	if err := b.Ack(ctx, fetchN(t, b, []string{"w"}, 1)[0]); err != nil {
		t.Fatal(err)
	}
	if n := e.rdb.Exists(ctx, e.key("w", "unique:once")).Val(); n != 0 {
		t.Fatal("claim left after the ack of a job without UniqueFor")
	}
}

// TestUniqueAckCost: acking jobs without a unique key sends what it sent
// before unique jobs existed (XACK and XDEL, pipelined); only the unique
// job in a mixed ack runs a script, in the same pipeline.
func TestUniqueAckCost(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	rdb := e.srv.Client(t)
	rec := &redistest.CommandLog{}
	rdb.AddHook(rec)
	b, err := redis.New(rdb, &redis.Options{Namespace: e.ns, Consumer: "c", Block: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	if _, err := b.PublishBatch(ctx, []broker.Message{
		{Topic: "cost", Payload: []byte("a")},
		{Topic: "cost", Payload: []byte("b")},
		{Topic: "cost", Payload: []byte("u"), UniqueKey: "k"},
	}); err != nil {
		t.Fatal(err)
	}
	ds := fetchN(t, b, []string{"cost"}, 3)
	rec.Take()
	if err := b.Ack(ctx, ds[0], ds[1]); err != nil {
		t.Fatal(err)
	}
	if got := rec.Take(); !slices.Equal(got, []string{"xack", "xdel"}) {
		t.Fatalf("plain ack sent %q, want one XACK and one XDEL", got)
	}
	if err := b.Ack(ctx, ds[2]); err != nil {
		t.Fatal(err)
	}
	// The script: EVALSHA, and the first time EVAL after NOSCRIPT.
	if got := rec.Take(); len(got) == 0 || slices.ContainsFunc(got, func(c string) bool { return c != "evalsha" && c != "eval" }) {
		t.Fatalf("unique ack sent %q, want its script only", got)
	}
	if _, err := b.Publish(ctx, broker.Message{Topic: "cost", UniqueKey: "k"}); err != nil {
		t.Fatalf("Publish after the unique job's ack: %v", err)
	}
}

// TestUniqueRelease: the paths that remove a unique job without an ack
// release its key only while it still names the job — DeleteDelayed, the
// dead-lettering of a malformed entry — and a replay that finds the key
// taken names the holder.
func TestUniqueRelease(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	b := e.broker(t, "c1", nil)

	// DeleteDelayed.
	m := broker.Message{Topic: "rel", Payload: []byte("p"), UniqueKey: "later", Delay: time.Hour}
	id, err := b.Publish(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	if dj, err := b.DelayedJobs(ctx, "rel", 10); err != nil || len(dj) != 1 || dj[0].Job.UniqueKey != "later" {
		t.Fatalf("DelayedJobs = %+v, %v; want the job with its key", dj, err)
	}
	if err := b.DeleteDelayed(ctx, "rel", id); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Publish(ctx, m); err != nil {
		t.Fatalf("Publish after DeleteDelayed: %v", err)
	}

	// A malformed entry (no payload) holding a claim, as a raw producer
	// could leave one.
	claim := e.key("rel", "unique:raw")
	e.rdb.Set(ctx, claim, "raw-1", 0)
	e.rdb.XAdd(ctx, &goredis.XAddArgs{Stream: e.key("rel", "stream"), Values: []any{"id", "raw-1", "unique_key", "raw"}})
	e.rdb.Set(ctx, e.key("rel", "unique:other"), "someone-else", 0)
	e.rdb.XAdd(ctx, &goredis.XAddArgs{Stream: e.key("rel", "stream"), Values: []any{"id", "raw-2", "unique_key", "other"}})
	fetchNone(t, b, []string{"rel"}, 200*time.Millisecond)
	eventually(t, "the malformed entries dead-lettered", func() bool { return xlen(t, e.rdb, e.key("rel", "dlq")) == 2 })
	if n := e.rdb.Exists(ctx, claim).Val(); n != 0 {
		t.Fatal("the claim of a malformed entry was not released when it was dead-lettered")
	}
	if got := e.rdb.Get(ctx, e.key("rel", "unique:other")).Val(); got != "someone-else" {
		t.Fatalf("a dead-lettering released a claim held by another job: %q", got)
	}

	// A replay refused for one dead letter still replays the others.
	dls, err := b.DeadLetters(ctx, "rel", "", 10)
	if err != nil || len(dls) != 2 {
		t.Fatalf("DeadLetters = %+v, %v", dls, err)
	}
	n, err := b.ReplayDeadLetters(ctx, "rel", nil)
	var de *broker.DuplicateError
	if n != 1 || !errors.As(err, &de) || de.ID != "someone-else" || de.Key != "other" || !strings.Contains(err.Error(), dls[1].ID) {
		t.Fatalf("ReplayDeadLetters = %d, %v; want 1 and the refusal of %s naming someone-else", n, err, dls[1].ID)
	}
	if got := e.rdb.Get(ctx, claim).Val(); got != "raw-1" {
		t.Fatalf("the replayed job's claim holds %q, want raw-1", got)
	}
}

// TestUniqueClaimTTL: a claim whose job vanished without a settle (here,
// deleted by hand) ends after Options.UniqueClaimTTL, counted from the
// job's due time; a retry renews it.
func TestUniqueClaimTTL(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	b := e.broker(t, "c1", func(o *redis.Options) { o.UniqueClaimTTL = 300 * time.Millisecond })
	m := broker.Message{Topic: "ttl", Payload: []byte("p"), UniqueKey: "k"}
	if _, err := b.Publish(ctx, m); err != nil {
		t.Fatal(err)
	}
	e.rdb.Del(ctx, e.key("ttl", "stream"))
	eventually(t, "the vanished job's claim to end", func() bool {
		_, err := b.Publish(ctx, m)
		return err == nil
	})

	// A retry an hour away renews the claim past the hour.
	d := fetchN(t, b, []string{"ttl"}, 1)[0]
	if err := b.Retry(ctx, d, time.Hour, job.Failure{Error: "later"}); err != nil {
		t.Fatal(err)
	}
	if ttl := e.rdb.PTTL(ctx, e.key("ttl", "unique:k")).Val(); ttl < time.Hour {
		t.Fatalf("claim TTL after a retry in 1h: %v, want 1h + UniqueClaimTTL", ttl)
	}
	if _, err := redis.New(e.rdb, &redis.Options{UniqueClaimTTL: -time.Second}); err == nil {
		t.Fatal("New accepted a negative UniqueClaimTTL")
	}
}

// TestUniqueCluster runs unique jobs on a 3-master Redis Cluster: each
// claim sits in its topic's hash slot, a batch over several slots reports
// its duplicates per index, and ack, dead-letter and replay move claims
// on each slot's node.
func TestUniqueCluster(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3)
	rdb := c.Client(t)
	ctx := context.Background()
	b, err := redis.New(rdb, &redis.Options{Namespace: c.Namespace, Consumer: "c",
		Lease: 200 * time.Millisecond, Block: 50 * time.Millisecond, ClaimInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	topics := []string{"alpha", "beta", "gamma", "delta"}
	var ms []broker.Message
	for _, topic := range topics {
		ms = append(ms, broker.Message{Topic: topic, Payload: []byte(topic), UniqueKey: "k"})
	}
	ms = append(ms, broker.Message{Topic: "beta", Payload: []byte("again"), UniqueKey: "k"})
	ids, err := b.PublishBatch(ctx, ms)
	var be *broker.BatchError
	if !errors.As(err, &be) || !slices.Equal(be.Duplicates, []int{4}) || len(be.Failed) != 0 || ids[4] != ids[1] {
		t.Fatalf("PublishBatch = %q, %v; want index 4 a duplicate of index 1", ids, err)
	}
	slots := map[int64]bool{}
	for _, topic := range topics {
		claim := c.Key("{"+topic+"}", "unique", "k")
		stream := c.Key("{"+topic+"}", "stream")
		cs, ss := rdb.ClusterKeySlot(ctx, claim).Val(), rdb.ClusterKeySlot(ctx, stream).Val()
		if cs != ss {
			t.Fatalf("claim %s in slot %d, its stream in %d", claim, cs, ss)
		}
		slots[cs] = true
	}
	if len(slots) < 2 {
		t.Fatalf("topics %v share one slot: the test needs several", topics)
	}

	got := map[string]*broker.Delivery{}
	for _, d := range fetchN(t, b, topics, len(topics)) {
		got[d.Job.Topic] = d
	}
	if err := b.Ack(ctx, got["alpha"], got["beta"]); err != nil {
		t.Fatal(err)
	}
	if err := b.DeadLetter(ctx, got["gamma"], job.Failure{Error: "x", Reason: job.ReasonPermanent}); err != nil {
		t.Fatal(err)
	}
	if err := b.Retry(ctx, got["delta"], time.Hour, job.Failure{Error: "y"}); err != nil {
		t.Fatal(err)
	}
	ids, err = b.PublishBatch(ctx, ms[:4])
	if !errors.As(err, &be) || !slices.Equal(be.Duplicates, []int{3}) || ids[3] != got["delta"].Job.ID {
		t.Fatalf("after ack, dead-letter and retry: %q, %v; want only delta (waiting to retry) a duplicate", ids, err)
	}
	if n, err := b.ReplayDeadLetters(ctx, "gamma", nil); n != 0 || !errors.Is(err, broker.ErrDuplicate) {
		t.Fatalf("replay while gamma's key is held = %d, %v; want ErrDuplicate", n, err)
	}
}
