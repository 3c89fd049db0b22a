package redis_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/redis"
	"github.com/conveyor-jobs/conveyor/internal/redistest"
)

// Benchmarks against the harness Redis. Each reports msg/s; the Raw ones are
// the floor: the same work done with go-redis directly, writing the same
// entry as the broker writes for a new job due now (payload alone).

const (
	benchBatch     = 100
	benchConsumers = 8
)

var benchPayload = []byte(`{"prompt":"summarise the ticket","model":"small","max_tokens":256}`)

// rawFields returns the fields the broker writes for a new job due now.
func rawFields() []string {
	return []string{"payload", string(benchPayload)}
}

func benchBroker(b *testing.B, srv *redistest.Server, rdb goredis.UniversalClient, consumer string) *redis.Broker {
	b.Helper()
	br, err := redis.New(rdb, &redis.Options{Namespace: srv.Namespace, Consumer: consumer, Block: 10 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = br.Close() })
	return br
}

func reportRate(b *testing.B, msgs int) {
	b.ReportMetric(float64(msgs)/b.Elapsed().Seconds(), "msg/s")
}

func BenchmarkPublish(b *testing.B) {
	srv := redistest.Start(b)
	br := benchBroker(b, srv, srv.Client(b), "p")
	ctx := context.Background()
	m := broker.Message{Topic: "bench", Payload: benchPayload}
	b.ResetTimer()
	for b.Loop() {
		if _, err := br.Publish(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, b.N)
}

// BenchmarkPublishUnique is BenchmarkPublish with a new unique key per job:
// the publish script that takes the claim with the XADD.
func BenchmarkPublishUnique(b *testing.B) {
	srv := redistest.Start(b)
	br := benchBroker(b, srv, srv.Client(b), "p")
	ctx := context.Background()
	m := broker.Message{Topic: "bench", Payload: benchPayload}
	n := 0
	b.ResetTimer()
	for b.Loop() {
		n++
		m.UniqueKey = strconv.Itoa(n)
		if _, err := br.Publish(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, b.N)
}

func BenchmarkPublishBatch(b *testing.B) {
	srv := redistest.Start(b)
	br := benchBroker(b, srv, srv.Client(b), "p")
	ctx := context.Background()
	ms := make([]broker.Message, benchBatch)
	for i := range ms {
		ms[i] = broker.Message{Topic: "bench", Payload: benchPayload}
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := br.PublishBatch(ctx, ms); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, b.N*benchBatch)
}

// BenchmarkFetchAck drains b.N jobs with 8 consumers, each fetching up to 100
// and acknowledging them in one call.
func BenchmarkFetchAck(b *testing.B) {
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

// BenchmarkRawXAdd is the floor of Publish: one XADD per round trip.
func BenchmarkRawXAdd(b *testing.B) {
	srv := redistest.Start(b)
	rdb := srv.Client(b)
	ctx := context.Background()
	key := srv.Namespace + ":{bench}:stream"
	b.ResetTimer()
	for b.Loop() {
		if err := rdb.XAdd(ctx, &goredis.XAddArgs{Stream: key, Values: rawFields()}).Err(); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, b.N)
}

// BenchmarkRawXAddPipelined is the floor of PublishBatch: 100 XADDs per
// pipeline.
func BenchmarkRawXAddPipelined(b *testing.B) {
	srv := redistest.Start(b)
	rdb := srv.Client(b)
	ctx := context.Background()
	key := srv.Namespace + ":{bench}:stream"
	b.ResetTimer()
	for b.Loop() {
		pipe := rdb.Pipeline()
		for range benchBatch {
			pipe.XAdd(ctx, &goredis.XAddArgs{Stream: key, Values: rawFields()})
		}
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, b.N*benchBatch)
}

// BenchmarkRawReadAck is the floor of FetchAck: 8 goroutines of XREADGROUP
// COUNT 100, then XACK + XDEL of the batch in one pipeline.
func BenchmarkRawReadAck(b *testing.B) {
	srv := redistest.Start(b)
	rdb := srv.Client(b)
	ctx := context.Background()
	key := srv.Namespace + ":{bench}:stream"
	for left := b.N; left > 0; left -= 1000 {
		pipe := rdb.Pipeline()
		for range min(left, 1000) {
			pipe.XAdd(ctx, &goredis.XAddArgs{Stream: key, Values: rawFields()})
		}
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
	if err := rdb.XGroupCreate(ctx, key, "g", "0").Err(); err != nil {
		b.Fatal(err)
	}
	var done atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for i := range benchConsumers {
		wg.Go(func() {
			consumer := fmt.Sprintf("c%d", i)
			for done.Load() < int64(b.N) {
				res, err := rdb.XReadGroup(ctx, &goredis.XReadGroupArgs{Group: "g", Consumer: consumer, Streams: []string{key, ">"}, Count: benchBatch, Block: 10 * time.Millisecond}).Result()
				if err == goredis.Nil {
					continue
				}
				if err != nil {
					b.Error(err)
					return
				}
				ids := make([]string, 0, benchBatch)
				for _, m := range res[0].Messages {
					ids = append(ids, m.ID)
				}
				pipe := rdb.Pipeline()
				pipe.XAck(ctx, key, "g", ids...)
				pipe.XDel(ctx, key, ids...)
				if _, err := pipe.Exec(ctx); err != nil {
					b.Error(err)
					return
				}
				done.Add(int64(len(ids)))
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	reportRate(b, b.N)
}
