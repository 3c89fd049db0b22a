package redis_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/redis"
	"github.com/conveyor-jobs/conveyor/internal/logtest"
	"github.com/conveyor-jobs/conveyor/internal/redistest"
)

// maxScansPerCall is the documented bound on the SCAN calls of one Topics
// call.
const maxScansPerCall = 4

// scanCall is one SCAN a client sent, or was about to send.
type scanCall struct {
	addr   string // the server's address
	cursor uint64 // the cursor sent
	next   uint64 // the cursor returned
	err    error
}

// scanRecorder records the SCAN calls of the clients it is hooked into, and
// can hold or fail them: intercept, when set, runs before each SCAN, and an
// error it returns fails the SCAN without sending it.
type scanRecorder struct {
	mu        sync.Mutex
	calls     []scanCall
	intercept func(ctx context.Context) error
}

func (r *scanRecorder) set(f func(ctx context.Context) error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.intercept = f
}

// since returns the SCAN calls recorded from the n-th on.
func (r *scanRecorder) since(n int) []scanCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls[n:])
}

func (r *scanRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.calls)
}

// hook returns a go-redis hook for the client of the server at addr.
func (r *scanRecorder) hook(addr string) goredis.Hook { return scanHook{r, addr} }

type scanHook struct {
	r    *scanRecorder
	addr string
}

func (h scanHook) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (h scanHook) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return next
}

func (h scanHook) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		sc, ok := cmd.(*goredis.ScanCmd)
		if !ok {
			return next(ctx, cmd)
		}
		cursor, _ := strconv.ParseUint(fmt.Sprint(cmd.Args()[1]), 10, 64)
		h.r.mu.Lock()
		f := h.r.intercept
		h.r.mu.Unlock()
		var err error
		if f != nil {
			if err = f(ctx); err != nil {
				cmd.SetErr(err)
			}
		}
		if err == nil {
			err = next(ctx, cmd)
		}
		_, returned := sc.Val()
		h.r.mu.Lock()
		h.r.calls = append(h.r.calls, scanCall{addr: h.addr, cursor: cursor, next: returned, err: err})
		h.r.mu.Unlock()
		return err
	}
}

// populated starts a server of the test's own holding keys keys written
// with DEBUG POPULATE (named key:N, outside every namespace).
func populated(t *testing.T, keys int) *redistest.Server {
	t.Helper()
	srv := redistest.Start(t, redistest.WithArgs("--enable-debug-command", "yes"))
	if err := srv.Client(t).Do(context.Background(), "DEBUG", "POPULATE", keys).Err(); err != nil {
		t.Fatalf("DEBUG POPULATE: %v", err)
	}
	return srv
}

// hookedBroker returns a broker on srv in namespace ns whose client reports
// its SCAN calls to rec.
func hookedBroker(t *testing.T, srv *redistest.Server, ns string, rec *scanRecorder, mod func(*redis.Options)) *redis.Broker {
	t.Helper()
	rdb := goredis.NewClient(srv.Options())
	t.Cleanup(func() { _ = rdb.Close() })
	if rec != nil {
		rdb.AddHook(rec.hook(srv.Addr()))
	}
	o := &redis.Options{Namespace: ns, Consumer: "a"}
	if mod != nil {
		mod(o)
	}
	b, err := redis.New(rdb, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// TestTopicsLargeKeyspace lists topics on a server of a million keys, where
// a full SCAN takes about half a second: Topics with a short deadline never
// fails and never waits for the scan, while repeated calls still discover a
// stream written by XADD alone.
func TestTopicsLargeKeyspace(t *testing.T) {
	t.Parallel()
	srv := populated(t, 1_000_000)
	ctx := context.Background()

	t.Run("bounded calls", func(t *testing.T) {
		// Each Topics call does a bounded share of the scan (counted, not
		// timed: the machine may be slow), never fails because of it, and
		// repeated calls still discover the stream.
		ns := srv.Namespace + "-bounded"
		rec := &scanRecorder{}
		b := hookedBroker(t, srv, ns, rec, func(o *redis.Options) { o.DiscoverInterval = time.Hour })
		if _, err := b.Publish(ctx, broker.Message{Topic: "registered", Payload: []byte("p")}); err != nil {
			t.Fatal(err)
		}
		rdb := srv.Client(t)
		xadd(t, rdb, ns+":{raw}:stream")
		calls := 0
		for ts := []string(nil); !slices.Contains(ts, "raw"); calls++ {
			if calls == 1000 { // a pass over a million keys takes about 250 calls
				t.Fatalf("%d Topics calls did not discover the stream written by XADD: %v", calls, ts)
			}
			n := rec.count()
			var err error
			if ts, err = b.Topics(ctx); err != nil {
				t.Fatalf("Topics call %d: %v", calls+1, err)
			}
			if !slices.Contains(ts, "registered") {
				t.Fatalf("Topics call %d = %v, want the registered topic", calls+1, ts)
			}
			if scans := len(rec.since(n)); scans > maxScansPerCall {
				t.Fatalf("Topics call %d made %d SCAN calls, want at most %d", calls+1, scans, maxScansPerCall)
			}
		}
		// Where the stream sits in the keyspace decides how many calls
		// reach it; the bound per call is what the loop checks.
		t.Logf("discovered after %d Topics calls", calls)
		reg, err := rdb.SMembers(ctx, ns+":topics").Result()
		if err != nil || !slices.Contains(reg, "raw") {
			t.Errorf("registry = %v, %v; want the discovered topic in it", reg, err)
		}
	})

	t.Run("concurrent callers do not wait", func(t *testing.T) {
		ns := srv.Namespace + "-concurrent"
		rec := &scanRecorder{}
		entered, release := make(chan struct{}), make(chan struct{})
		var enterOnce, releaseOnce sync.Once
		unblock := func() { releaseOnce.Do(func() { close(release) }) }
		defer unblock()
		rec.set(func(context.Context) error { // the first SCAN waits for release
			enterOnce.Do(func() { close(entered) })
			<-release
			return nil
		})
		b := hookedBroker(t, srv, ns, rec, nil)
		if _, err := b.Publish(ctx, broker.Message{Topic: "registered", Payload: []byte("p")}); err != nil {
			t.Fatal(err)
		}
		scanning := make(chan error, 1)
		go func() {
			_, err := b.Topics(ctx)
			scanning <- err
		}()
		select {
		case <-entered:
		case <-time.After(10 * time.Second):
			t.Fatal("the first Topics call sent no SCAN")
		}

		type result struct {
			ts  []string
			err error
		}
		second := make(chan result, 1)
		go func() {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			ts, err := b.Topics(cctx)
			second <- result{ts, err}
		}()
		select {
		case r := <-second:
			if r.err != nil || !slices.Equal(r.ts, []string{"registered"}) {
				t.Errorf("Topics during another call's scan = %v, %v; want [registered]", r.ts, r.err)
			}
		case <-time.After(5 * time.Second):
			t.Error("a Topics call waited for another call's scan")
			unblock()
			<-second
		}
		unblock()
		if err := <-scanning; err != nil {
			t.Errorf("the scanning Topics call: %v", err)
		}
	})

	t.Run("scan errors keep the pass", func(t *testing.T) {
		ns := srv.Namespace + "-errors"
		rec := &scanRecorder{}
		clk := newClock()
		var logs logtest.Buffer
		b := hookedBroker(t, srv, ns, rec, func(o *redis.Options) {
			o.DiscoverInterval, o.Now, o.Logger = time.Minute, clk.Now, logs.TextLogger(nil)
		})
		if _, err := b.Publish(ctx, broker.Message{Topic: "registered", Payload: []byte("p")}); err != nil {
			t.Fatal(err)
		}
		xadd(t, srv.Client(t), ns+":{raw}:stream")
		warnings := func() int { return strings.Count(logs.String(), "SCAN failed") }
		// call lists the topics and returns the SCAN calls it made.
		call := func(ctx context.Context) ([]string, []scanCall) {
			t.Helper()
			n := rec.count()
			ts, err := b.Topics(ctx)
			if err != nil || !slices.Contains(ts, "registered") {
				t.Fatalf("Topics = %v, %v; want the registered topic and no error", ts, err)
			}
			scans := rec.since(n)
			if len(scans) > maxScansPerCall {
				t.Fatalf("one Topics call made %d SCAN calls, want at most %d", len(scans), maxScansPerCall)
			}
			return ts, scans
		}

		_, scans := call(ctx)
		if len(scans) != maxScansPerCall || scans[0].cursor != 0 {
			t.Fatalf("first call's SCANs = %+v, want %d from cursor 0", scans, maxScansPerCall)
		}
		cursor := scans[len(scans)-1].next

		// A failing SCAN: no error, the same cursor tried again next time,
		// one warning for the same error.
		rec.set(func(context.Context) error { return errors.New("ERR injected failure") })
		for range 2 {
			if _, scans := call(ctx); len(scans) != 1 || scans[0].cursor != cursor {
				t.Fatalf("SCANs while failing = %+v, want one from cursor %d", scans, cursor)
			}
		}
		if n := warnings(); n != 1 {
			t.Errorf("%d warnings for one repeated SCAN error, want 1:\n%s", n, logs.String())
		}
		rec.set(func(context.Context) error { return errors.New("ERR another failure") })
		call(ctx)
		if n := warnings(); n != 2 {
			t.Errorf("%d warnings after a second, different SCAN error, want 2:\n%s", n, logs.String())
		}

		// The caller's deadline passing during a SCAN: no error, no warning.
		rec.set(func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
		cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		_, scans = call(cctx)
		cancel()
		if len(scans) != 1 || scans[0].cursor != cursor {
			t.Fatalf("SCANs past the deadline = %+v, want one from cursor %d", scans, cursor)
		}
		if n := warnings(); n != 2 {
			t.Errorf("the caller's deadline was logged as a SCAN failure:\n%s", logs.String())
		}

		// The pass resumes where it stopped and completes.
		rec.set(nil)
		if _, scans = call(ctx); len(scans) == 0 || scans[0].cursor != cursor {
			t.Fatalf("SCANs after the failures = %+v, want them to resume from cursor %d", scans, cursor)
		}
		var ts []string
		for i := 0; scans[len(scans)-1].next != 0; i++ {
			if i == 1000 {
				t.Fatal("the pass did not complete in 1000 Topics calls")
			}
			ts, scans = call(ctx)
			if len(scans) == 0 {
				t.Fatal("a Topics call in the middle of a pass made no SCAN")
			}
		}
		if !slices.Contains(ts, "raw") {
			t.Fatalf("Topics after a full pass = %v, want the stream written by XADD", ts)
		}
		// No new pass within DiscoverInterval; one from cursor 0 after it.
		if ts, scans = call(ctx); len(scans) != 0 || !slices.Contains(ts, "raw") {
			t.Fatalf("Topics right after a pass = %v with SCANs %+v; want raw listed and no SCAN", ts, scans)
		}
		clk.Advance(time.Minute)
		if _, scans = call(ctx); len(scans) == 0 || scans[0].cursor != 0 {
			t.Fatalf("SCANs after DiscoverInterval = %+v, want a new pass from cursor 0", scans)
		}
	})
}

// TestClusterDiscoveryCursorPerMaster checks that topic discovery on a
// Redis Cluster keeps a SCAN cursor per master across Topics calls, within
// the per-call bound, and finds streams on every master.
func TestClusterDiscoveryCursorPerMaster(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3)
	ctx := context.Background()
	rec := &scanRecorder{}
	rdb := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: c.Addrs})
	t.Cleanup(func() { _ = rdb.Close() })
	rdb.OnNewNode(func(n *goredis.Client) { n.AddHook(rec.hook(n.Options().Addr)) })

	// Enough keys that each master takes several SCAN calls.
	pipe := rdb.Pipeline()
	for i := range 20000 {
		pipe.Set(ctx, fmt.Sprintf("%s-filler:%d", c.Namespace, i), "x", 0)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	rawTopics := []string{"r1", "r2", "r3", "r4", "r5", "r6"}
	for _, topic := range rawTopics {
		xadd(t, rdb, c.Namespace+":{"+topic+"}:stream")
	}
	b, err := redis.New(rdb, &redis.Options{Namespace: c.Namespace})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	var ts []string
	calls := 0
	for !slices.Equal(ts, rawTopics) {
		if calls++; calls == 1000 {
			t.Fatalf("Topics on the cluster = %v after %d calls, want %v", ts, calls, rawTopics)
		}
		n := rec.count()
		if ts, err = b.Topics(ctx); err != nil {
			t.Fatal(err)
		}
		if scans := rec.since(n); len(scans) > maxScansPerCall {
			t.Fatalf("one Topics call made %d SCAN calls, want at most %d", len(scans), maxScansPerCall)
		}
	}
	if calls < 2 {
		t.Errorf("one Topics call scanned 20,000 keys")
	}
	// Each master's SCANs form one chain: from cursor 0, each resuming at
	// the cursor the previous one returned.
	byAddr := map[string][]scanCall{}
	for _, s := range rec.since(0) {
		byAddr[s.addr] = append(byAddr[s.addr], s)
	}
	if len(byAddr) != len(c.Addrs) {
		t.Fatalf("SCANs went to %d servers, want the %d masters", len(byAddr), len(c.Addrs))
	}
	for addr, scans := range byAddr {
		next := uint64(0)
		for i, s := range scans {
			if s.err != nil || s.cursor != next {
				t.Fatalf("master %s: SCAN %d = %+v, want cursor %d", addr, i, s, next)
			}
			next = s.next
		}
		if len(scans) < 2 {
			t.Errorf("master %s: %d SCAN calls, want several", addr, len(scans))
		}
	}
}

// TestDiscoverTopicsFullPass: where one Topics call reaches only part of a
// large keyspace, DiscoverTopics scans it to the end and lists every stream
// written by XADD alone; it fails with the caller's deadline rather than
// return a partial listing, and a refused SCAN is an error naming it.
func TestDiscoverTopicsFullPass(t *testing.T) {
	t.Parallel()
	srv := populated(t, 100_000)
	ctx := context.Background()
	rdb := srv.Client(t)

	ns := srv.Namespace + "-full"
	rec := &scanRecorder{}
	b := hookedBroker(t, srv, ns, rec, func(o *redis.Options) { o.DiscoverInterval = time.Hour })
	const raw = 300
	pipe := rdb.Pipeline()
	for i := range raw {
		pipe.XAdd(ctx, &goredis.XAddArgs{Stream: fmt.Sprintf("%s:{r%03d}:stream", ns, i), Values: []string{"payload", "{}"}})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	// One Topics call scans about 4,000 of the 100,300 keys.
	if ts, err := b.Topics(ctx); err != nil || len(ts) >= raw {
		t.Fatalf("one Topics call over 100,300 keys listed %d topics (%v); the test needs a partial pass", len(ts), err)
	}
	ts, err := b.DiscoverTopics(ctx)
	if err != nil || len(ts) != raw {
		t.Fatalf("DiscoverTopics listed %d topics, %v; want all %d streams written by XADD", len(ts), err, raw)
	}
	calls := rec.since(0)
	if last := calls[len(calls)-1]; last.next != 0 {
		t.Errorf("DiscoverTopics stopped at cursor %d, before the end of the keyspace", last.next)
	}
	if n := len(calls); n < 100 {
		t.Errorf("%d SCAN calls of COUNT 1000 for 100,300 keys: the pass did not cover the keyspace", n)
	}

	t.Run("deadline", func(t *testing.T) {
		b := hookedBroker(t, srv, srv.Namespace+"-deadline-full", nil, nil)
		cctx, cancel := context.WithTimeout(ctx, time.Millisecond)
		defer cancel()
		<-cctx.Done()
		if ts, err := b.DiscoverTopics(cctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("DiscoverTopics after its deadline = %v, %v; want context.DeadlineExceeded", ts, err)
		}
	})

	t.Run("scan refused", func(t *testing.T) {
		rec := &scanRecorder{}
		rec.set(func(context.Context) error {
			return errors.New("NOPERM this user has no permissions to run the 'scan' command")
		})
		b := hookedBroker(t, srv, srv.Namespace+"-noperm-full", rec, nil)
		_, err := b.DiscoverTopics(ctx)
		if err == nil || !strings.Contains(err.Error(), "NOPERM") || !strings.Contains(strings.ToLower(err.Error()), "scan") {
			t.Errorf("DiscoverTopics with SCAN refused: %v; want a NOPERM error naming SCAN", err)
		}
		if _, err := b.Topics(ctx); err != nil {
			t.Errorf("Topics after a refused SCAN: %v; want the registered topics", err)
		}
	})
}

// TestDiscoverTopicsAfterPartialPass: DiscoverTopics called while a pass is
// in progress starts a new one, so it lists streams written after that pass
// began in the part it had already scanned (SCAN only guarantees keys that
// exist for the whole scan).
func TestDiscoverTopicsAfterPartialPass(t *testing.T) {
	t.Parallel()
	srv := populated(t, 100_000)
	ctx := context.Background()
	rdb := srv.Client(t)
	ns := srv.Namespace + "-partial"
	b := hookedBroker(t, srv, ns, nil, func(o *redis.Options) { o.DiscoverInterval = time.Hour })
	if _, err := b.Topics(ctx); err != nil { // a pass starts and stops part-way
		t.Fatal(err)
	}
	var want []string
	for i := range 300 {
		topic := fmt.Sprintf("r%03d", i)
		want = append(want, topic)
		xadd(t, rdb, ns+":{"+topic+"}:stream")
	}
	ts, err := b.DiscoverTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	for _, topic := range want {
		if !slices.Contains(ts, topic) {
			missing = append(missing, topic)
		}
	}
	if len(missing) > 0 {
		t.Errorf("DiscoverTopics, called after XADD of %d streams, misses %d: %v", len(want), len(missing), missing)
	}
}

// TestDiscoveryNeverForgetsOnRefusal: when SCAN is refused part-way through
// a pass (and the registry cannot be written either), the topics the pass
// had found stay listed: the listing never goes backwards.
func TestDiscoveryNeverForgetsOnRefusal(t *testing.T) {
	t.Parallel()
	srv := populated(t, 100_000)
	ctx := context.Background()
	rdb := srv.Client(t)
	ns := srv.Namespace + "-refused"
	pipe := rdb.Pipeline()
	for i := range 2000 {
		pipe.XAdd(ctx, &goredis.XAddArgs{Stream: fmt.Sprintf("%s:{r%04d}:stream", ns, i), Values: []string{"payload", "{}"}})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	rec := &scanRecorder{}
	client := goredis.NewClient(srv.Options())
	t.Cleanup(func() { _ = client.Close() })
	client.AddHook(rec.hook(srv.Addr()))
	client.AddHook(refuseHook{"sadd"}) // a user without SADD: the listing cannot lean on the registry
	b, err := redis.New(client, &redis.Options{Namespace: ns, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	first, err := b.Topics(ctx) // the first step of a pass: part of the keyspace
	if err != nil {
		t.Fatal(err)
	}
	if len(first) == 0 || len(first) == 2000 {
		t.Fatalf("the first Topics call listed %d of 2000 topics; the test needs a pass stopped part-way with some found", len(first))
	}
	rec.set(func(context.Context) error {
		return errors.New("NOPERM this user has no permissions to run the 'scan' command")
	})
	for i := range 3 {
		ts, err := b.Topics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if lost := slices.DeleteFunc(slices.Clone(first), func(topic string) bool { return slices.Contains(ts, topic) }); len(lost) > 0 {
			t.Fatalf("Topics call %d after SCAN was refused lost %d of the %d topics listed before (listing went backwards)", i+1, len(lost), len(first))
		}
	}
}

// refuseHook fails the commands it names with an ACL refusal, as a Redis
// user without them would see.
type refuseHook struct{ name string }

func (h refuseHook) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (h refuseHook) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return next
}

func (h refuseHook) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		if cmd.Name() == h.name {
			err := fmt.Errorf("NOPERM this user has no permissions to run the '%s' command", h.name)
			cmd.SetErr(err)
			return err
		}
		return next(ctx, cmd)
	}
}

// TestClusterDiscoveryPastFailingMaster: a master whose SCAN keeps failing
// does not stop discovery on the others.
func TestClusterDiscoveryPastFailingMaster(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3)
	ctx := context.Background()
	failing := slices.Min(c.Addrs) // scanned first, in address order
	fail := &scanRecorder{}
	fail.set(func(context.Context) error { return errors.New("LOADING Redis is loading the dataset in memory") })
	rdb := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: c.Addrs})
	t.Cleanup(func() { _ = rdb.Close() })
	rdb.OnNewNode(func(n *goredis.Client) {
		if n.Options().Addr == failing {
			n.AddHook(fail.hook(failing))
		}
	})
	var healthy []string
	for i := range 12 {
		topic := fmt.Sprintf("r%d", i)
		key := c.Namespace + ":{" + topic + "}:stream"
		xadd(t, rdb, key)
		m, err := rdb.MasterForKey(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if m.Options().Addr != failing {
			healthy = append(healthy, topic)
		}
	}
	if len(healthy) == 0 {
		t.Skip("every stream landed on the failing master") // 12 streams over 3 masters: (1/3)^12
	}
	b, err := redis.New(rdb, &redis.Options{Namespace: c.Namespace, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	var ts []string
	for calls := 0; ; calls++ {
		if calls == 50 {
			t.Fatalf("Topics after %d calls = %v; want the streams of the healthy masters %v", calls, ts, healthy)
		}
		if ts, err = b.Topics(ctx); err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(healthy, func(topic string) bool { return !slices.Contains(ts, topic) }) {
			break
		}
	}
	if fail.count() == 0 {
		t.Fatal("the failing master was never scanned: the test did not test anything")
	}
}

// TestDiscoverTopicsStopsAtClose: closing the broker ends a DiscoverTopics
// in progress, also when the broker does not own its client (which Close
// leaves open).
func TestDiscoverTopicsStopsAtClose(t *testing.T) {
	t.Parallel()
	srv := populated(t, 300_000)
	ctx := context.Background()
	rec := &scanRecorder{}
	var b *redis.Broker
	calls := 0
	rec.set(func(context.Context) error {
		if calls++; calls == 5 {
			_ = b.Close()
		}
		return nil
	})
	b = hookedBroker(t, srv, srv.Namespace+"-close", rec, nil)
	if _, err := b.DiscoverTopics(ctx); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("DiscoverTopics closed part-way = %v, want broker.ErrClosed", err)
	}
	if n := rec.count(); n > 5 {
		t.Errorf("%d SCAN calls after Close, want none", n-5)
	}
}
