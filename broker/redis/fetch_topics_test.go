package redis_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/redis"
	"github.com/conveyor-jobs/conveyor/internal/redistest"
	"github.com/conveyor-jobs/conveyor/job"
)

// TestFetchFillsMaxFromManyTopics: on a single Redis, a Fetch over 201
// topics returns max jobs as long as max are waiting in any of them, and
// leases exactly what it returns, however the jobs are spread (a long
// backlog on one topic, a few jobs on each of the others).
func TestFetchFillsMaxFromManyTopics(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	b := e.broker(t, "a", func(o *redis.Options) { o.Lease = time.Minute; o.ClaimInterval = time.Hour })
	var topics []string
	var ms []broker.Message
	for i := range 200 {
		topic := fmt.Sprintf("t%03d", i)
		topics = append(topics, topic)
		for j := range 2 {
			ms = append(ms, broker.Message{Topic: topic, Payload: fmt.Appendf(nil, "%s-%d", topic, j)})
		}
	}
	topics = append(topics, "hot")
	for j := range 150 {
		ms = append(ms, broker.Message{Topic: "hot", Payload: fmt.Appendf(nil, "hot-%d", j)})
	}
	if _, err := b.PublishBatch(ctx, ms); err != nil {
		t.Fatal(err)
	}
	const max = 7
	left, returned := len(ms), 0
	for calls := 0; left > 0; calls++ {
		if calls > len(ms) {
			t.Fatalf("%d jobs left after %d Fetch calls", left, calls)
		}
		ds, err := b.Fetch(ctx, topics, max)
		if err != nil {
			t.Fatal(err)
		}
		if want := min(max, left); len(ds) != want {
			t.Fatalf("Fetch %d returned %d jobs while %d were waiting, want %d", calls, len(ds), left, want)
		}
		left -= len(ds)
		returned += len(ds)
	}
	var leased int64
	for _, topic := range topics {
		leased += pendingOf(t, e, e.key(topic, "stream"), "a")
	}
	if leased != int64(returned) {
		t.Fatalf("returned %d jobs but leased %d", returned, leased)
	}
}

// promotions returns how many promotion scripts (EVAL or EVALSHA whose first
// key is a delayed set) log recorded since it was last read.
func promotions(log *redistest.CommandLog) int {
	n := 0
	for _, args := range log.TakeArgs() {
		if name := fmt.Sprint(args[0]); (name == "evalsha" || name == "eval") && len(args) > 3 &&
			strings.HasSuffix(fmt.Sprint(args[3]), ":delayed") {
			n++
		}
	}
	return n
}

// TestDelayedPromotedWhenDueWithoutPolling: with ClaimInterval an hour, a
// Fetch promotes a delayed job this broker published as soon as the
// (injected) clock passes its due time, and runs no promotion while it is
// not due.
func TestDelayedPromotedWhenDueWithoutPolling(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	log := &redistest.CommandLog{}
	rdb.AddHook(log)
	clk := newClock()
	b, err := redis.New(rdb, &redis.Options{
		Namespace: srv.Namespace, Consumer: "a", Block: 5 * time.Millisecond,
		ClaimInterval: time.Hour, Now: clk.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	ctx := context.Background()
	// The first Fetch runs the ClaimInterval maintenance (and loads the
	// scripts).
	if ds, err := b.Fetch(ctx, []string{"t"}, 1); err != nil || len(ds) != 0 {
		t.Fatalf("first Fetch: %d jobs, err %v", len(ds), err)
	}
	if promotions(log) == 0 {
		t.Fatal("the first Fetch ran no promotion")
	}
	if _, err := b.Publish(ctx, broker.Message{Topic: "t", Payload: []byte("later"), Delay: time.Minute}); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if ds, err := b.Fetch(ctx, []string{"t"}, 1); err != nil || len(ds) != 0 {
			t.Fatalf("Fetch before the due time: %d jobs, err %v", len(ds), err)
		}
	}
	if n := promotions(log); n != 0 {
		t.Fatalf("%d promotions in 5 Fetch calls before anything was due, want 0", n)
	}
	clk.Advance(time.Minute)
	ds, err := b.Fetch(ctx, []string{"t"}, 1)
	if err != nil || len(ds) != 1 || string(ds[0].Job.Payload) != "later" {
		t.Fatalf("Fetch after the due time: %d jobs, err %v; want the delayed job", len(ds), err)
	}
	if n := promotions(log); n != 1 {
		t.Fatalf("%d promotions, want 1", n)
	}
}

// TestWaitingFetchPromotesDelayedJobs: a Fetch that waits for new jobs
// returns a delayed job of one of its topics that comes due during the
// wait (published, retried or snoozed through this broker), although
// ClaimInterval is an hour: the wait promotes it at its due time. On a
// single Redis and on Cluster, with one topic and with several.
func TestWaitingFetchPromotesDelayedJobs(t *testing.T) {
	t.Parallel()
	redistest.StandaloneAndCluster(t, func(t *testing.T, rdb goredis.UniversalClient, ns string) {
		b, err := redis.New(rdb, &redis.Options{
			Namespace: ns, Consumer: "a", Lease: time.Minute,
			Block: redis.MaxBlock, ClaimInterval: time.Hour,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		ctx := context.Background()
		const delay = 50 * time.Millisecond
		for _, topics := range [][]string{{"one"}, {"x", "y", "z"}} {
			topic := topics[len(topics)-1]
			// The first Fetch runs the ClaimInterval maintenance.
			if _, err := b.Publish(ctx, broker.Message{Topic: topic, Payload: []byte("now")}); err != nil {
				t.Fatal(err)
			}
			first := fetchOne(t, b, topics, "now")
			if _, err := b.Publish(ctx, broker.Message{Topic: topic, Payload: []byte("published"), Delay: delay}); err != nil {
				t.Fatal(err)
			}
			d := fetchOne(t, b, topics, "published")
			if err := b.Retry(ctx, d, delay, job.Failure{Error: "again"}); err != nil {
				t.Fatal(err)
			}
			d = fetchOne(t, b, topics, "published")
			if d.Job.Attempt != 2 {
				t.Fatalf("retried job has attempt %d, want 2", d.Job.Attempt)
			}
			if err := b.Snooze(ctx, d, delay); err != nil {
				t.Fatal(err)
			}
			d = fetchOne(t, b, topics, "published")
			if err := b.Ack(ctx, first, d); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// fetchOne calls Fetch once and wants exactly the job with payload want.
func fetchOne(t *testing.T, b *redis.Broker, topics []string, want string) *broker.Delivery {
	t.Helper()
	ds, err := b.Fetch(context.Background(), topics, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 || string(ds[0].Job.Payload) != want {
		t.Fatalf("Fetch(%q) returned %d jobs, want %q", topics, len(ds), want)
	}
	return ds[0]
}

// TestWaitingFetchPromotesJobDelayedDuringTheWait: a delayed job published
// while a Fetch is already blocked in Redis (and ClaimInterval is an hour)
// is returned by that Fetch once due: the wait learns of the earlier due
// time.
func TestWaitingFetchPromotesJobDelayedDuringTheWait(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	b, err := redis.New(rdb, &redis.Options{
		Namespace: srv.Namespace, Consumer: "a", Block: redis.MaxBlock, ClaimInterval: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	ctx := context.Background()
	topics := []string{"x", "y"}
	if _, err := b.Publish(ctx, broker.Message{Topic: "y", Payload: []byte("now")}); err != nil {
		t.Fatal(err)
	}
	fetchOne(t, b, topics, "now") // runs the ClaimInterval maintenance
	type result struct {
		ds  []*broker.Delivery
		err error
	}
	got := make(chan result, 1)
	go func() {
		ds, err := b.Fetch(ctx, topics, 1)
		got <- result{ds, err}
	}()
	eventually(t, "the Fetch to block in Redis", func() bool {
		info, err := rdb.Info(ctx, "clients").Result()
		return err == nil && strings.Contains(info, "blocked_clients:1")
	})
	if _, err := b.Publish(ctx, broker.Message{Topic: "y", Payload: []byte("later"), Delay: 20 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.err != nil || len(r.ds) != 1 || string(r.ds[0].Job.Payload) != "later" {
		t.Fatalf("the waiting Fetch returned %d jobs, err %v; want the delayed job", len(r.ds), r.err)
	}
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
	redistest.StandaloneAndCluster(t, func(t *testing.T, rdb goredis.UniversalClient, ns string) {
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

// TestReadErrorInTheClusterWindow: on Cluster, a Fetch of many streams
// reads a window of them first; a stream of the window that fails does not
// keep the others from being read in the same Fetch, wherever the window
// starts.
func TestReadErrorInTheClusterWindow(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3)
	rdb := c.Client(t)
	ctx := context.Background()
	b, err := redis.New(rdb, &redis.Options{
		Namespace: c.Namespace, Consumer: "a", Lease: time.Minute,
		Block: 20 * time.Millisecond, ClaimInterval: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	topics := []string{"bad", "good-1", "good-2", "good-3"}
	if _, err := b.Fetch(ctx, topics, 16); err != nil { // creates the groups
		t.Fatal(err)
	}
	bad := c.Namespace + ":{bad}:stream"
	if err := rdb.Del(ctx, bad).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(ctx, bad, "not a stream", 0).Err(); err != nil {
		t.Fatal(err)
	}
	// Every window position: the window moves on by one stream per Fetch.
	for turn := range len(topics) {
		if _, err := b.Publish(ctx, broker.Message{Topic: topics[1+turn%3], Payload: []byte("kept")}); err != nil {
			t.Fatal(err)
		}
		ds, err := b.Fetch(ctx, topics, 16)
		if len(ds) != 1 || string(ds[0].Job.Payload) != "kept" {
			t.Fatalf("turn %d: Fetch returned %d deliveries (err %v), want the good topic's job", turn, len(ds), err)
		}
		if err := b.Ack(ctx, ds...); err != nil {
			t.Fatal(err)
		}
	}
}
