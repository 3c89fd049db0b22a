package redis_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/redis"
	"github.com/conveyor-jobs/conveyor/broker/resulttest"
	"github.com/conveyor-jobs/conveyor/internal/redistest"
)

// resultFactory returns brokers on the Redis client connects to, each in a
// namespace of its own.
func resultFactory(prefix string, client goredis.UniversalClient) resulttest.Factory {
	return partitionedResultFactory(prefix, client, 1)
}

// partitionedResultFactory is resultFactory with the suite's topics split
// into partitions.
func partitionedResultFactory(prefix string, client goredis.UniversalClient, partitions int) resulttest.Factory {
	var n atomic.Int64
	return func(t *testing.T) broker.Broker {
		b, err := redis.New(client, &redis.Options{
			Namespace: fmt.Sprintf("%s-r%d", prefix, n.Add(1)),
			Consumer:  "c",
			Block:     20 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		if partitions > 1 {
			for _, topic := range []string{"steps", "other"} {
				if err := b.SetPartitions(context.Background(), topic, partitions); err != nil {
					t.Fatal(err)
				}
			}
		}
		return b
	}
}

func TestResults(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	resulttest.Run(t, resultFactory(srv.Namespace, srv.Client(t)))
}

// TestResultsCluster runs the results suite on a 3-master Cluster: every
// result and progress key lives in its topic's slot.
func TestResultsCluster(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3)
	resulttest.Run(t, resultFactory(c.Namespace, c.Client(t)))
}

// TestResultsPartitioned runs the results suite on topics of 4 partitions
// on a 3-master Cluster: a result is kept in the slot of the partition its
// job was read from, and found by ID in any of them.
func TestResultsPartitioned(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3)
	resulttest.Run(t, partitionedResultFactory(c.Namespace, c.Client(t), 4))
}

// TestResultKeys pins down the key of a result, its fields and its expiry
// after Options.ResultRetention, and that the key is gone once the
// retention ends.
func TestResultKeys(t *testing.T) {
	redistest.StandaloneAndCluster(t, func(t *testing.T, rdb goredis.UniversalClient, ns string) {
		ctx := context.Background()
		e := &env{rdb: rdb, ns: ns}
		b := e.broker(t, "c", func(o *redis.Options) { o.ResultRetention = 300 * time.Millisecond })
		id, err := b.Publish(ctx, broker.Message{Topic: "steps", Payload: []byte("x")})
		if err != nil {
			t.Fatal(err)
		}
		d := fetchN(t, b, []string{"steps"}, 1)[0]
		d.Result = []byte(`{"ok":true}`)
		if err := b.Ack(ctx, d); err != nil {
			t.Fatal(err)
		}
		key := e.key("steps", "result:"+id)
		h, err := rdb.HGetAll(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if h["result"] != `{"ok":true}` || h["state"] != "succeeded" || h["attempt"] != "1" || h["finished_at"] == "" || h["enqueued_at"] == "" {
			t.Fatalf("result hash %s = %v", key, h)
		}
		ttl, err := rdb.PTTL(ctx, key).Result()
		if err != nil || ttl <= 0 || ttl > 300*time.Millisecond {
			t.Fatalf("PTTL %s = %v, %v; want in (0, 300ms]", key, ttl, err)
		}
		if n := xlen(t, rdb, e.key("steps", "stream")); n != 0 {
			t.Fatalf("stream length %d after the ack, want 0", n)
		}
		eventually(t, "the result to expire", func() bool {
			n, err := rdb.Exists(ctx, key).Result()
			return err == nil && n == 0
		})
		if js, err := b.JobState(ctx, "steps", id); !errors.Is(err, broker.ErrNotFound) {
			t.Fatalf("after the retention: %+v, %v; want broker.ErrNotFound", js, err)
		}
	})
}

// TestProgressKeys pins down the keys of a topic's progress, their TTL, and
// the pruning of progress not written for longer than the TTL.
func TestProgressKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	clk := newClock()
	b := e.broker(t, "c", func(o *redis.Options) { o.Now = clk.Now })
	for range 2 {
		if _, err := b.Publish(ctx, broker.Message{Topic: "steps", Payload: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	ds := fetchN(t, b, []string{"steps"}, 2)
	at := time.UnixMilli(1767225600000)
	if err := b.RecordProgress(ctx, broker.ProgressUpdate{Delivery: ds[0], Progress: broker.Progress{Fraction: 0.75, Message: "almost", At: at}}); err != nil {
		t.Fatal(err)
	}
	hash, zset := e.key("steps", "progress"), e.key("steps", "progress:at")
	v, err := e.rdb.HGet(ctx, hash, ds[0].Receipt).Result()
	if err != nil || v != `{"fraction":0.75,"message":"almost","at":1767225600000}` {
		t.Fatalf("HGET %s %s = %q, %v", hash, ds[0].Receipt, v, err)
	}
	if score, err := e.rdb.ZScore(ctx, zset, ds[0].Receipt).Result(); err != nil || int64(score) != clk.Now().UnixMilli() {
		t.Fatalf("ZSCORE %s = %v, %v; want the time of the write", zset, score, err)
	}
	for _, key := range []string{hash, zset} {
		ttl, err := e.rdb.PTTL(ctx, key).Result()
		if err != nil || ttl <= redis.MinProgressTTL-time.Minute || ttl > redis.MinProgressTTL {
			t.Fatalf("PTTL %s = %v, %v; want about %v", key, ttl, err, redis.MinProgressTTL)
		}
	}

	// A write after the TTL prunes the progress no one renewed.
	clk.Advance(redis.MinProgressTTL + time.Millisecond)
	if err := b.RecordProgress(ctx, broker.ProgressUpdate{Delivery: ds[1], Progress: broker.Progress{Fraction: 0.1, At: at}}); err != nil {
		t.Fatal(err)
	}
	if fields, err := e.rdb.HKeys(ctx, hash).Result(); err != nil || len(fields) != 1 || fields[0] != ds[1].Receipt {
		t.Fatalf("progress fields %v, %v; want only the recent write's", fields, err)
	}
	if n, err := e.rdb.ZCard(ctx, zset).Result(); err != nil || n != 1 {
		t.Fatalf("ZCARD %s = %d, %v; want 1", zset, n, err)
	}
}

func TestResultRetentionBounds(t *testing.T) {
	rdb := goredis.NewClient(&goredis.Options{})
	t.Cleanup(func() { _ = rdb.Close() })
	for _, r := range []time.Duration{-time.Second, time.Microsecond, redis.MaxResultRetention + time.Hour} {
		if _, err := redis.New(rdb, &redis.Options{ResultRetention: r}); err == nil {
			t.Errorf("ResultRetention %v accepted", r)
		}
	}
	b, err := redis.New(rdb, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := b.Options().ResultRetention; got != redis.DefaultResultRetention {
		t.Fatalf("default ResultRetention %v, want %v", got, redis.DefaultResultRetention)
	}
}

// roundTrips counts the round trips a client makes: one per command sent
// alone, one per pipeline.
type roundTrips struct{ n atomic.Int64 }

func (r *roundTrips) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (r *roundTrips) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		r.n.Add(1)
		return next(ctx, cmd)
	}
}

func (r *roundTrips) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		r.n.Add(1)
		return next(ctx, cmds)
	}
}

// TestAckResultCost: acking jobs without a result sends what it sent before
// results existed (one XACK and one XDEL per stream, in one round trip);
// a job with a result adds one script call to the same round trip.
func TestAckResultCost(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	rdb := e.srv.Client(t)
	rec, trips := &redistest.CommandLog{}, &roundTrips{}
	rdb.AddHook(rec)
	rdb.AddHook(trips)
	b, err := redis.New(rdb, &redis.Options{Namespace: e.ns, Consumer: "c", Block: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	var ms []broker.Message
	for range 6 {
		ms = append(ms, broker.Message{Topic: "cost", Payload: []byte("x")})
	}
	if _, err := b.PublishBatch(ctx, ms); err != nil {
		t.Fatal(err)
	}
	ds := fetchN(t, b, []string{"cost"}, 6)
	// An ack with a result first loads the script (NOSCRIPT, then EVAL), so
	// that the counts below are the steady state.
	ds[5].Result = []byte(`0`)
	if err := b.Ack(ctx, ds[5]); err != nil {
		t.Fatal(err)
	}
	rec.Take()
	trips.n.Store(0)
	if err := b.Ack(ctx, ds[0], ds[1]); err != nil {
		t.Fatal(err)
	}
	if got := rec.Take(); !slices.Equal(got, []string{"xack", "xdel"}) || trips.n.Load() != 1 {
		t.Fatalf("ack without results sent %q in %d round trips, want one XACK and one XDEL in 1", got, trips.n.Load())
	}
	ds[3].Result, ds[4].Result = []byte(`1`), []byte(`2`)
	trips.n.Store(0)
	if err := b.Ack(ctx, ds[2], ds[3], ds[4]); err != nil {
		t.Fatal(err)
	}
	if got := rec.Take(); !slices.Equal(got, []string{"xack", "xdel", "evalsha", "evalsha"}) || trips.n.Load() != 1 {
		t.Fatalf("ack with two results sent %q in %d round trips, want XACK, XDEL and one EVALSHA per result in 1", got, trips.n.Load())
	}
}

// BenchmarkFetchAckResult is BenchmarkFetchAck with a result on every
// delivery: the ack runs one script per job, in the same pipeline.
func BenchmarkFetchAckResult(b *testing.B) {
	srv := redistest.Start(b)
	rdb := srv.Client(b)
	pub := benchBroker(b, srv, rdb, "p")
	ctx := context.Background()
	ms := make([]broker.Message, 1000)
	for i := range ms {
		ms[i] = broker.Message{Topic: "bench", Payload: benchPayload}
	}
	for left := b.N; left > 0; left -= len(ms) {
		if _, err := pub.PublishBatch(ctx, ms[:min(left, len(ms))]); err != nil {
			b.Fatal(err)
		}
	}
	result := []byte(`{"summary":"the ticket asks for a refund","tokens":212}`)
	consumers := make([]*redis.Broker, benchConsumers)
	for i := range consumers {
		consumers[i] = benchBroker(b, srv, rdb, "c"+strconv.Itoa(i))
		if _, err := consumers[i].Fetch(ctx, []string{"other"}, 1); err != nil { // warm up: scripts, groups
			b.Fatal(err)
		}
	}
	var done atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for _, c := range consumers {
		wg.Go(func() {
			for done.Load() < int64(b.N) {
				ds, err := c.Fetch(ctx, []string{"bench"}, benchBatch)
				if err != nil {
					b.Error(err)
					return
				}
				if len(ds) == 0 {
					continue
				}
				for _, d := range ds {
					d.Result = result
				}
				if err := c.Ack(ctx, ds...); err != nil {
					b.Error(err)
					return
				}
				done.Add(int64(len(ds)))
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	reportRate(b, b.N)
}
