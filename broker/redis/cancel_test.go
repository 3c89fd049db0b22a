package redis_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/redis"
	"github.com/conveyor-jobs/conveyor/internal/redistest"
	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/server"
)

// TestCancelRawEntry: an entry written by another producer without an id
// field is cancelled by its entry ID, and its dead letter carries that ID.
func TestCancelRawEntry(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.broker(t, "c1", nil)
	ctx := context.Background()
	id, err := e.rdb.XAdd(ctx, &goredis.XAddArgs{Stream: e.key("raw", "stream"), Values: []any{"payload", `{"k":1}`, "h.tenant", "t1"}}).Result()
	if err != nil {
		t.Fatal(err)
	}
	res, err := b.Cancel(ctx, "raw", id)
	if err != nil || res != broker.CancelledQueued {
		t.Fatalf("Cancel = %v, %v; want queued", res, err)
	}
	if n := xlen(t, e.rdb, e.key("raw", "stream")); n != 0 {
		t.Fatalf("stream length %d after cancel, want 0", n)
	}
	dls, err := b.DeadLetters(ctx, "raw", "", 0)
	if err != nil || len(dls) != 1 {
		t.Fatalf("DeadLetters = %v, %v; want one", dls, err)
	}
	j := dls[0].Job
	if j.ID != id || string(j.Payload) != `{"k":1}` || j.Headers["tenant"] != "t1" || j.Failure.Reason != job.ReasonCancelled {
		t.Fatalf("dead letter = %+v, want job %s with its payload, header and reason cancelled", j, id)
	}
}

// TestCancelByEntryID: a running job with an ID of its own is also found by
// its stream entry ID (the ID a pending-entry listing shows).
func TestCancelByEntryID(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.broker(t, "c1", nil)
	ctx := context.Background()
	if _, err := b.Publish(ctx, broker.Message{Topic: "t", Payload: []byte("x"), ID: "own-id"}); err != nil {
		t.Fatal(err)
	}
	d := fetchN(t, b, []string{"t"}, 1)[0]
	res, err := b.Cancel(ctx, "t", d.Receipt)
	if err != nil || res != broker.CancelRequested {
		t.Fatalf("Cancel(entry ID) = %v, %v; want running", res, err)
	}
	rs, err := b.CancelRequested(ctx, d)
	if err != nil || !slices.Equal(rs, []string{d.Receipt}) {
		t.Fatalf("CancelRequested = %v, %v; want [%s]", rs, err, d.Receipt)
	}
	if _, err := b.Cancel(ctx, "t", "9-9"); !errors.Is(err, broker.ErrNotFound) {
		t.Fatalf("Cancel of an unknown entry ID = %v, want ErrNotFound", err)
	}
}

// TestCancelRequestLapses: a cancel request lapses after CancelRequestTTL,
// and the next Cancel of the topic removes the lapsed requests.
func TestCancelRequestLapses(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	clk := newClock()
	b := e.broker(t, "c1", func(o *redis.Options) { o.Now = clk.Now; o.CancelRequestTTL = time.Minute })
	ctx := context.Background()
	for _, id := range []string{"a", "b"} {
		if _, err := b.Publish(ctx, broker.Message{Topic: "t", Payload: []byte(id), ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	ds := fetchN(t, b, []string{"t"}, 2)
	if _, err := b.Cancel(ctx, "t", "a"); err != nil {
		t.Fatal(err)
	}
	key := e.ns + ":{t}:cancel"
	if n, _ := e.rdb.ZCard(ctx, key).Result(); n != 1 {
		t.Fatalf("%s holds %d requests, want 1", key, n)
	}
	clk.Advance(time.Minute + time.Millisecond)
	if rs, err := b.CancelRequested(ctx, ds...); err != nil || len(rs) != 0 {
		t.Fatalf("CancelRequested after the TTL = %v, %v; want none", rs, err)
	}
	if _, err := b.Cancel(ctx, "t", "b"); err != nil {
		t.Fatal(err)
	}
	got, _ := e.rdb.ZRange(ctx, key, 0, -1).Result()
	if !slices.Equal(got, []string{ds[1].Receipt}) {
		t.Fatalf("%s = %v, want only the new request %s", key, got, ds[1].Receipt)
	}
	if rs, err := b.CancelRequested(ctx, ds...); err != nil || !slices.Equal(rs, []string{ds[1].Receipt}) {
		t.Fatalf("CancelRequested = %v, %v; want [%s]", rs, err, ds[1].Receipt)
	}
}

// zrangeCounter counts, per node, the pipelines and commands that read
// cancel requests (ZRANGEBYSCORE).
type zrangeCounter struct {
	mu        sync.Mutex
	pipelines int
	commands  int
}

func (c *zrangeCounter) read() (int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pipelines, c.commands
}

func (c *zrangeCounter) DialHook(next goredis.DialHook) goredis.DialHook { return next }
func (c *zrangeCounter) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return next
}
func (c *zrangeCounter) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		n := 0
		for _, cmd := range cmds {
			if strings.EqualFold(cmd.Name(), "zrangebyscore") {
				n++
			}
		}
		if n > 0 {
			c.mu.Lock()
			c.pipelines++
			c.commands += n
			c.mu.Unlock()
		}
		return next(ctx, cmds)
	}
}

// TestCancelServer runs a server on a single Redis and on a 3-master Redis
// Cluster, with two topics (in different slots): a running job of each is
// cancelled within the server's CancelInterval and dead-lettered
// cancelled; queued and delayed jobs are dead-lettered at once; on the
// Cluster every key of a cancel shares its topic's slot. It also counts
// the round trips the server spends reading cancel requests: none while
// idle; while busy, one pipeline per check on a single Redis, one per node
// holding the topics on a Cluster.
func TestCancelServer(t *testing.T) {
	t.Parallel()
	t.Run("single", func(t *testing.T) {
		t.Parallel()
		srv := redistest.Start(t)
		counter := &zrangeCounter{}
		rdb := goredis.NewClient(srv.Options())
		rdb.AddHook(counter)
		t.Cleanup(func() { _ = rdb.Close() })
		testCancelServer(t, rdb, srv.Namespace, counter, 1)
	})
	t.Run("cluster", func(t *testing.T) {
		t.Parallel()
		c := redistest.StartCluster(t, 3)
		counter := &zrangeCounter{}
		rdb := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: c.Addrs})
		rdb.OnNewNode(func(n *goredis.Client) { n.AddHook(counter) })
		t.Cleanup(func() { _ = rdb.Close() })
		testCancelServer(t, rdb, c.Namespace, counter, 2)
	})
}

// testCancelServer is TestCancelServer on rdb; nodes is the most nodes the
// two topics' keys live on.
func testCancelServer(t *testing.T, rdb goredis.UniversalClient, ns string, counter *zrangeCounter, nodes int) {
	ctx := context.Background()
	b, err := redis.New(rdb, &redis.Options{Namespace: ns, Consumer: "w", Lease: 2 * time.Second,
		Block: 50 * time.Millisecond, ClaimInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	topics := []string{"alpha", "beta"} // different slots
	cluster := nodes > 1
	slot := func(key string) int64 {
		s, err := rdb.ClusterKeySlot(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if cluster && slot(ns+":{alpha}:stream") == slot(ns+":{beta}:stream") {
		t.Fatal("test topics share a slot")
	}

	started := make(chan string, 2)
	h := job.HandlerFunc(func(ctx context.Context, j *job.Job) error {
		started <- j.ID
		<-ctx.Done()
		return context.Cause(ctx)
	})
	s, err := server.New(b, h, &server.Options{Topics: topics, Concurrency: 2, CancelInterval: 20 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})

	// Idle: the server reads no cancel request.
	from := s.Stats().Fetches
	eventually(t, "idle fetches", func() bool { return s.Stats().Fetches >= from+10 })
	if p, _ := counter.read(); p != 0 {
		t.Fatalf("%d cancel-request reads while idle, want 0", p)
	}

	for _, topic := range topics {
		if _, err := b.Publish(ctx, broker.Message{Topic: topic, Payload: []byte("run"), ID: topic + "-run"}); err != nil {
			t.Fatal(err)
		}
	}
	<-started
	<-started
	for _, topic := range topics {
		// Queued and delayed jobs, published while both workers are busy.
		if _, err := b.PublishBatch(ctx, []broker.Message{
			{Topic: topic, Payload: []byte("q"), ID: topic + "-queued"},
			{Topic: topic, Payload: []byte("d"), ID: topic + "-delayed", Delay: time.Hour},
		}); err != nil {
			t.Fatal(err)
		}
		for id, want := range map[string]broker.CancelResult{topic + "-queued": broker.CancelledQueued, topic + "-delayed": broker.CancelledDelayed} {
			if res, err := b.Cancel(ctx, topic, id); err != nil || res != want {
				t.Fatalf("Cancel(%s) = %v, %v; want %v", id, res, err, want)
			}
		}
	}
	// Busy: one check per interval, one pipeline per node.
	checks0 := s.Stats().CancelChecks
	p0, c0 := counter.read()
	eventually(t, "cancel checks while busy", func() bool { return s.Stats().CancelChecks >= checks0+5 })
	p1, c1 := counter.read()
	checks1 := s.Stats().CancelChecks
	perCheck := float64(p1-p0) / float64(checks1-checks0)
	if n := int(checks1-checks0) + 1; p1-p0 > nodes*n || c1-c0 > 2*n { // + 1: a check counted before its stat
		t.Errorf("%d pipelines, %d commands for %d checks: want at most %d pipelines (one per node) and one command per topic per check", p1-p0, c1-c0, checks1-checks0, nodes)
	}
	t.Logf("busy, 2 topics on %d node(s): %.2f round trips per check (%d checks, %d pipelines, %d ZRANGEBYSCORE)", nodes, perCheck, checks1-checks0, p1-p0, c1-c0)

	for _, topic := range topics {
		if res, err := b.Cancel(ctx, topic, topic+"-run"); err != nil || res != broker.CancelRequested {
			t.Fatalf("Cancel(%s-run) = %v, %v; want running", topic, res, err)
		}
		if cluster && slot(ns+":{"+topic+"}:cancel") != slot(ns+":{"+topic+"}:stream") {
			t.Fatalf("the cancel requests of %s are not in its slot", topic)
		}
	}
	eventually(t, "both running jobs cancelled", func() bool { return s.Stats().Cancelled == 2 })
	for _, topic := range topics {
		dls, err := b.DeadLetters(ctx, topic, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, dl := range dls {
			if dl.Job.Failure == nil || dl.Job.Failure.Reason != job.ReasonCancelled {
				t.Errorf("dead letter %s of %s: failure %+v, want reason cancelled", dl.Job.ID, topic, dl.Job.Failure)
			}
			got = append(got, dl.Job.ID)
		}
		slices.Sort(got)
		want := []string{topic + "-delayed", topic + "-queued", topic + "-run"}
		if !slices.Equal(got, want) {
			t.Errorf("dead letters of %s = %v, want %v", topic, got, want)
		}
		info, err := b.Inspect(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		if info.Length != 0 || info.Delayed != 0 || info.Pending != 0 {
			t.Errorf("%s after the cancels: %+v, want nothing left", topic, info)
		}
	}
}

// TestCancelACL runs Cancel and CancelRequested as a Redis ACL user with
// exactly the commands of the least-privilege user in docs/redis.md.
func TestCancelACL(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Restartable()) // own server: ACL SETUSER must not touch a shared one
	ctx := context.Background()
	const user, pass = "conveyor-worker", "acl-Passw0rd-9"
	args := []any{"ACL", "SETUSER", user, "reset", "on", ">" + pass, "~" + srv.Namespace + ":*", "-@all"}
	for _, c := range strings.Fields(`ping hello auth select
		xadd xreadgroup xack xdel xautoclaim xclaim xpending xgroup|create xgroup|delconsumer
		xinfo|groups xinfo|stream xinfo|consumers xlen xrange xrevrange xtrim
		zadd zrange zrangebyscore zrem zcard sadd smembers scan set get evalsha eval`) {
		args = append(args, "+"+c)
	}
	if err := srv.Client(t).Do(ctx, args...).Err(); err != nil {
		t.Fatalf("ACL SETUSER: %v", err)
	}
	b, err := redis.Open(fmt.Sprintf("redis://%s:%s@%s", user, pass, srv.Addr()), &redis.Options{Namespace: srv.Namespace, Block: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.PublishBatch(ctx, []broker.Message{
		{Topic: "t", Payload: []byte("r"), ID: "running"},
		{Topic: "t", Payload: []byte("q"), ID: "queued"},
		{Topic: "t", Payload: []byte("d"), ID: "delayed", Delay: time.Hour},
	}); err != nil {
		t.Fatal(err)
	}
	d := fetchN(t, b, []string{"t"}, 1)[0]
	for id, want := range map[string]broker.CancelResult{"running": broker.CancelRequested, "queued": broker.CancelledQueued, "delayed": broker.CancelledDelayed} {
		if res, err := b.Cancel(ctx, "t", id); err != nil || res != want {
			t.Errorf("Cancel(%s) = %v, %v; want %v", id, res, err, want)
		}
	}
	if rs, err := b.CancelRequested(ctx, d); err != nil || len(rs) != 1 {
		t.Errorf("CancelRequested = %v, %v; want the running job", rs, err)
	}
}
