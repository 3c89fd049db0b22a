package redis_test

import (
	"context"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/redis"
	"github.com/conveyor-jobs/conveyor/internal/clocktest"
	"github.com/conveyor-jobs/conveyor/internal/redistest"
)

// env is one test's Redis, namespace and raw client.
type env struct {
	srv *redistest.Server
	rdb goredis.UniversalClient
	ns  string
}

func newEnv(t testing.TB) *env {
	t.Helper()
	srv := redistest.Start(t)
	return &env{srv: srv, rdb: srv.Client(t), ns: srv.Namespace}
}

// key returns the key of topic's kind ("stream", "delayed", "dlq").
func (e *env) key(topic, kind string) string {
	return e.ns + ":{" + topic + "}:" + kind
}

// newClock returns a fake clock at the real time.
func newClock() *clocktest.Clock { return clocktest.New(time.Now()) }

// broker returns a broker on e with fast test timings, closed at cleanup.
// mod may change the options.
func (e *env) broker(t testing.TB, consumer string, mod func(*redis.Options)) *redis.Broker {
	t.Helper()
	o := &redis.Options{
		Namespace:     e.ns,
		Consumer:      consumer,
		Lease:         time.Second,
		Block:         50 * time.Millisecond,
		ClaimInterval: 20 * time.Millisecond,
	}
	if mod != nil {
		mod(o)
	}
	b, err := redis.New(e.rdb, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// fetchN fetches from topics until it has n deliveries or 5s pass.
func fetchN(t testing.TB, b broker.Broker, topics []string, n int) []*broker.Delivery {
	t.Helper()
	var out []*broker.Delivery
	deadline := time.Now().Add(5 * time.Second)
	for len(out) < n && time.Now().Before(deadline) {
		ds, err := b.Fetch(context.Background(), topics, n-len(out))
		if err != nil {
			t.Fatalf("Fetch: %v", err)
		}
		out = append(out, ds...)
	}
	if len(out) < n {
		t.Fatalf("fetched %d deliveries, want %d", len(out), n)
	}
	return out
}

// fetchNone asserts that fetching topics for d returns nothing.
func fetchNone(t testing.TB, b broker.Broker, topics []string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		ds, err := b.Fetch(context.Background(), topics, 10)
		if err != nil {
			t.Fatalf("Fetch: %v", err)
		}
		if len(ds) > 0 {
			t.Fatalf("unexpected delivery %+v", ds[0].Job)
		}
	}
}

// eventually polls cond until it holds or 5s pass.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func xlen(t testing.TB, rdb goredis.UniversalClient, key string) int64 {
	t.Helper()
	n, err := rdb.XLen(context.Background(), key).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

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

// xlenAcked returns how many jobs of topics were acknowledged (deleted).
func xlenAcked(t *testing.T, e *env, topics []string) int64 {
	t.Helper()
	var left int64
	for _, topic := range topics {
		left += xlen(t, e.rdb, e.key(topic, "stream"))
	}
	return 9 - left
}
