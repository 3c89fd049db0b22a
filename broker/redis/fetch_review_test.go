package redis_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/redis"
	"github.com/conveyor-jobs/conveyor/internal/redistest"
)

// pendingOf returns how many entries of stream are leased to consumer.
func pendingOf(t *testing.T, e *env, stream, consumer string) int64 {
	t.Helper()
	ps, err := e.rdb.XPendingExt(context.Background(), &goredis.XPendingExtArgs{
		Stream: stream, Group: "conveyor", Start: "-", End: "+", Count: 1000, Consumer: consumer,
	}).Result()
	if err != nil {
		t.Fatal(err)
	}
	return int64(len(ps))
}

// TestFetchSeveralTopicsLeasesOnlyWhatItReturns: a Fetch of several topics
// leases no more entries than max, so entries it does not return are never
// recovered by another consumer with a spent attempt.
func TestFetchSeveralTopicsLeasesOnlyWhatItReturns(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	short := func(o *redis.Options) { o.Lease = 100 * time.Millisecond }
	a, other := e.broker(t, "a", short), e.broker(t, "b", short)
	topics := []string{"t1", "t2", "t3"}
	var ms []broker.Message
	for _, topic := range topics {
		for i := range 3 {
			ms = append(ms, broker.Message{Topic: topic, Payload: fmt.Appendf(nil, "%s-%d", topic, i)})
		}
	}
	if _, err := a.PublishBatch(ctx, ms); err != nil {
		t.Fatal(err)
	}
	for _, max := range []int{1, 2, 4} {
		t.Run(fmt.Sprint("max", max), func(t *testing.T) {
			ds, err := a.Fetch(ctx, topics, max)
			if err != nil {
				t.Fatal(err)
			}
			if len(ds) == 0 || len(ds) > max {
				t.Fatalf("Fetch(max=%d) returned %d", max, len(ds))
			}
			var leased int64
			for _, topic := range topics {
				leased += pendingOf(t, e, e.key(topic, "stream"), "a")
			}
			if leased != int64(len(ds)) {
				t.Fatalf("Fetch(max=%d) returned %d but leased %d", max, len(ds), leased)
			}
			if err := a.Ack(ctx, ds...); err != nil {
				t.Fatal(err)
			}
		})
	}
	// a keeps busy past the lease; whatever b gets never ran and must
	// carry attempt 1, in FIFO order within each topic.
	time.Sleep(150 * time.Millisecond) // let a lease pass so recovery would claim leftovers
	rest := fetchN(t, other, topics, len(ms)-int(xlenAcked(t, e, topics)))
	last := map[string]string{}
	for _, d := range rest {
		if d.Job.Attempt != 1 {
			t.Fatalf("job %s delivered with attempt %d, want 1 (it never ran)", d.Job.Payload, d.Job.Attempt)
		}
		if p := string(d.Job.Payload); p <= last[d.Job.Topic] {
			t.Fatalf("topic %s: %s after %s", d.Job.Topic, p, last[d.Job.Topic])
		}
		last[d.Job.Topic] = string(d.Job.Payload)
	}
}

// xlenAcked returns how many jobs of topics were acknowledged (deleted).
func xlenAcked(t *testing.T, e *env, topics []string) int64 {
	t.Helper()
	var left int64
	for _, topic := range topics {
		left += xlen(t, e.rdb, e.key(topic, "stream"))
	}
	return 9 - left
}

// TestMaintenanceErrorOfOneTopicSparesTheOthers: a topic whose delayed key
// has the wrong type fails promotion at every Fetch, yet an expired lease of
// another topic is still recovered, and Fetch returns it without an error.
func TestMaintenanceErrorOfOneTopicSparesTheOthers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	short := func(o *redis.Options) { o.Lease = 100 * time.Millisecond }
	crashed, b := e.broker(t, "crashed", short), e.broker(t, "b", short)
	if err := e.rdb.Set(ctx, e.key("bad", "delayed"), "not a sorted set", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Publish(ctx, broker.Message{Topic: "good", Payload: []byte("orphan")}); err != nil {
		t.Fatal(err)
	}
	// The first consumer takes the job and never settles it.
	fetchN(t, crashed, []string{"good"}, 1)
	var got *broker.Delivery
	eventually(t, "recovery of the orphaned job", func() bool {
		ds, err := b.Fetch(ctx, []string{"bad", "good"}, 10)
		if err != nil {
			t.Fatalf("Fetch failed because of another topic's maintenance: %v", err)
		}
		if len(ds) > 0 {
			got = ds[0]
		}
		return got != nil
	})
	if string(got.Job.Payload) != "orphan" || got.Job.Attempt != 2 {
		t.Fatalf("recovered %q attempt %d, want orphan attempt 2", got.Job.Payload, got.Job.Attempt)
	}
}

// TestReadErrorOfOneStreamKeepsTheOthers: when reading one topic's stream
// fails, the jobs read from the other topics (now leased) are returned, on a
// single server and on Redis Cluster.
func TestReadErrorOfOneStreamKeepsTheOthers(t *testing.T) {
	t.Parallel()
	for _, cluster := range []bool{false, true} {
		t.Run(map[bool]string{false: "standalone", true: "cluster"}[cluster], func(t *testing.T) {
			t.Parallel()
			var rdb goredis.UniversalClient
			var ns string
			if cluster {
				c := redistest.StartCluster(t, 1)
				rdb, ns = c.Client(t), c.Namespace
			} else {
				s := redistest.Start(t)
				rdb, ns = s.Client(t), s.Namespace
			}
			ctx := context.Background()
			b, err := redis.New(rdb, &redis.Options{
				Namespace: ns, Consumer: "a", Lease: time.Minute,
				Block: 20 * time.Millisecond, ClaimInterval: time.Hour, // maintenance only at the first Fetch
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = b.Close() })
			topics := []string{"bad", "good"}
			// Create both groups, then break the stream of "bad".
			if _, err := b.Fetch(ctx, topics, 10); err != nil {
				t.Fatal(err)
			}
			bad := ns + ":{bad}:stream"
			if err := rdb.Del(ctx, bad).Err(); err != nil {
				t.Fatal(err)
			}
			if err := rdb.Set(ctx, bad, "not a stream", 0).Err(); err != nil {
				t.Fatal(err)
			}
			if _, err := b.Publish(ctx, broker.Message{Topic: "good", Payload: []byte("kept")}); err != nil {
				t.Fatal(err)
			}
			ds, err := b.Fetch(ctx, topics, 10)
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if len(ds) != 1 || string(ds[0].Job.Payload) != "kept" || ds[0].Job.Attempt != 1 {
				t.Fatalf("Fetch returned %d deliveries, want the job of the good topic", len(ds))
			}
			if err := b.Ack(ctx, ds...); err != nil {
				t.Fatal(err)
			}
			// With nothing read elsewhere, the error is returned.
			if _, err := b.Fetch(ctx, topics, 10); err == nil || !strings.Contains(err.Error(), "WRONGTYPE") {
				t.Fatalf("Fetch with only a broken stream: err %v, want WRONGTYPE", err)
			}
		})
	}
}

// TestFetchRejectsTopicsThatBreakHashTags: topic names with '{' or '}' (or
// empty) would put a topic's keys in different Cluster slots; Fetch rejects
// them with an error naming the topic, and ValidateTopic states the rule.
func TestTopicsThatBreakHashTagsAreRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.broker(t, "a", nil)
	for _, tc := range []struct {
		topic string
		ok    bool
	}{
		{"orders", true},
		{"orders.dlq", true},
		{"a:b-c_d", true},
		{"", false},
		{"{}x}", false},
		{"x{y", false},
		{"y}", false},
	} {
		err := redis.ValidateTopic(tc.topic)
		if (err == nil) != tc.ok {
			t.Fatalf("ValidateTopic(%q) = %v, want ok=%v", tc.topic, err, tc.ok)
		}
		_, ferr := b.Fetch(context.Background(), []string{"orders", tc.topic}, 1)
		_, perr := b.Publish(context.Background(), broker.Message{Topic: tc.topic, Payload: []byte("{}")})
		if tc.ok {
			if ferr != nil || perr != nil {
				t.Fatalf("topic %q: Fetch: %v, Publish: %v", tc.topic, ferr, perr)
			}
			continue
		}
		if tc.topic == "" { // Publish names the message rather than the empty topic
			if !errors.Is(perr, broker.ErrInvalidMessage) {
				t.Fatalf("Publish to an empty topic: %v", perr)
			}
			perr = ferr
		}
		for _, err := range []error{err, ferr, perr} {
			if !errors.Is(err, broker.ErrInvalidMessage) || !strings.Contains(err.Error(), fmt.Sprintf("%q", tc.topic)) || !strings.Contains(err.Error(), "'{'") {
				t.Fatalf("topic %q: error %v, want ErrInvalidMessage naming the topic and the rule", tc.topic, err)
			}
		}
	}
}

// TestExtendReportsDeletedEntries: an entry deleted from the stream while
// leased is not reported as renewed: Extend returns ErrNotFound, the job is
// counted in Lost, and the other delivery is renewed.
func TestExtendReportsDeletedEntries(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	b := e.broker(t, "a", nil)
	for _, p := range []string{"kept", "deleted"} {
		if _, err := b.Publish(ctx, broker.Message{Topic: "ext", Payload: []byte(p)}); err != nil {
			t.Fatal(err)
		}
	}
	ds := fetchN(t, b, []string{"ext"}, 2)
	if err := b.Extend(ctx, ds...); err != nil {
		t.Fatalf("Extend of two leased deliveries: %v", err)
	}
	if err := e.rdb.XDel(ctx, e.key("ext", "stream"), ds[1].Receipt).Err(); err != nil {
		t.Fatal(err)
	}
	err := b.Extend(ctx, ds...)
	if !errors.Is(err, broker.ErrNotFound) || !strings.Contains(err.Error(), "1 of 2") {
		t.Fatalf("Extend after XDEL: %v, want ErrNotFound for 1 of 2", err)
	}
	if got := b.Lost(); got != 1 {
		t.Fatalf("Lost() = %d, want 1", got)
	}
	if n := pendingOf(t, e, e.key("ext", "stream"), "a"); n != 1 {
		t.Fatalf("%d entries pending, want 1 (the kept one)", n)
	}
	if err := b.Extend(ctx, ds[0]); err != nil {
		t.Fatalf("Extend of the kept delivery: %v", err)
	}
	if err := b.Ack(ctx, ds[0]); err != nil {
		t.Fatal(err)
	}
}
