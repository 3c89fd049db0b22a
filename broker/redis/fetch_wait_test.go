package redis_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/redis"
	"github.com/conveyor-jobs/conveyor/internal/redistest"
)

// TestFetchBlocksAtOnceAfterAnEmptyRead: on a single Redis, a Fetch of one
// topic whose previous read found nothing waiting sends a blocking
// XREADGROUP with a GET of the pause key pipelined after it, and the
// blocking read returns at once the jobs published meanwhile. Once such a
// read returns more than one job, the next Fetch reads without blocking
// again, the pause key in the same pipeline. A pause that lands meanwhile
// lets one batch through, and stops the Fetch after it.
func TestFetchBlocksAtOnceAfterAnEmptyRead(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	r := newReadLog(t, rdb, srv.Namespace)
	ctx := context.Background()

	// The first Fetch reads without blocking, finds nothing and waits; a
	// job published during the wait ends it.
	r.fetchDuringWait("1")
	// Its read found nothing waiting: the next one blocks at once, and
	// returns the job waiting without a wait.
	r.publish("2")
	r.fetch(ctx, "second Fetch", []string{"2"}, "xreadgroup-block", "get")
	if want := redis.MaxBlock.Milliseconds(); r.block != want {
		t.Errorf("the blocking read waits %dms, want Block (%dms)", r.block, want)
	}
	// That read returned one job: the next blocks at once too, and returns
	// the three jobs waiting.
	r.publish("3", "4", "5")
	r.fetch(ctx, "third Fetch", []string{"3", "4", "5"}, "xreadgroup-block", "get")
	// Three at once: the next Fetch reads without blocking, the pause key
	// read beside it.
	r.publish("6")
	r.fetch(ctx, "fourth Fetch", []string{"6"}, "get", "xreadgroup")

	// A pause: the Fetch blocking at once takes the batch waiting, and
	// sees the pause; the next Fetch takes nothing.
	r.fetchDuringWait("7")
	if err := r.b.Pause(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	r.publish("8", "9")
	r.fetch(ctx, "Fetch after the pause", []string{"8", "9"}, "xreadgroup-block", "get")
	r.publish("10")
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	r.fetch(short, "second Fetch after the pause", nil, "get")
}

// TestFetchBlocksAtOnceWithinTheReadTimeout: go-redis reads a pipeline's
// replies within the client's ReadTimeout, so a Fetch blocking at once
// (its wait pipelined with the pause key) waits at most three quarters of
// it.
func TestFetchBlocksAtOnceWithinTheReadTimeout(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	o := srv.Options()
	o.ReadTimeout = 400 * time.Millisecond
	rdb := goredis.NewClient(o)
	t.Cleanup(func() { _ = rdb.Close() })
	r := newReadLog(t, rdb, srv.Namespace)
	r.fetchDuringWait("1")
	// Nothing waits: the wait runs its whole course and ends empty, with
	// no error: it stayed within the read timeout.
	r.fetch(context.Background(), "Fetch on the empty topic", nil, "xreadgroup-block", "get")
	if r.block != 300 {
		t.Errorf("the blocking read waits %dms, want 300ms (3/4 of the read timeout)", r.block)
	}
}

// readLog fetches topic t of a broker and names the reads its Fetch calls
// sent: get (of the pause key), xreadgroup, or xreadgroup-block.
type readLog struct {
	t     *testing.T
	b     *redis.Broker
	log   *redistest.CommandLog
	sent  []string
	block int64 // the BLOCK of the last blocking read, in ms
}

// newReadLog opens a broker on rdb (Block: MaxBlock) whose reads it names.
func newReadLog(t *testing.T, rdb *goredis.Client, ns string) *readLog {
	log := &redistest.CommandLog{}
	rdb.AddHook(log)
	b, err := redis.New(rdb, &redis.Options{
		Namespace: ns, Consumer: "a", Lease: time.Minute,
		Block: redis.MaxBlock, ClaimInterval: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return &readLog{t: t, b: b, log: log}
}

func (r *readLog) publish(payloads ...string) {
	r.t.Helper()
	for _, p := range payloads {
		if _, err := r.b.Publish(context.Background(), broker.Message{Topic: "t", Payload: []byte(p)}); err != nil {
			r.t.Fatal(err)
		}
	}
}

// reads returns the reads sent since it was last called.
func (r *readLog) reads() []string {
	for _, args := range r.log.TakeArgs() {
		name := strings.ToLower(fmt.Sprint(args[0]))
		i := slices.IndexFunc(args, func(a any) bool { return strings.EqualFold(fmt.Sprint(a), "block") })
		switch {
		case name == "get":
			r.sent = append(r.sent, name)
		case name == "xreadgroup" && i >= 0:
			r.sent = append(r.sent, "xreadgroup-block")
			r.block, _ = strconv.ParseInt(fmt.Sprint(args[i+1]), 10, 64)
		case name == "xreadgroup":
			r.sent = append(r.sent, name)
		}
	}
	out := r.sent
	r.sent = nil
	return out
}

// fetch runs one Fetch of up to 10 jobs and fails unless it returned the
// jobs whose payloads are want (ctx's error counts as none) and sent
// exactly the reads sent.
func (r *readLog) fetch(ctx context.Context, step string, want []string, sent ...string) {
	r.t.Helper()
	r.reads()
	ds, err := r.b.Fetch(ctx, []string{"t"}, 10)
	if err != nil && ctx.Err() == nil {
		r.t.Fatalf("%s: %v", step, err)
	}
	if got := payloads(ds); !slices.Equal(got, want) {
		r.t.Fatalf("%s: Fetch returned %q; want %q", step, got, want)
	}
	if got := r.reads(); !slices.Equal(got, sent) {
		r.t.Fatalf("%s sent %q; want %q", step, got, sent)
	}
}

// fetchDuringWait runs a Fetch that reads without blocking, finds nothing
// and waits, and publishes a job (payload p) during the wait, which it
// returns.
func (r *readLog) fetchDuringWait(p string) {
	r.t.Helper()
	r.reads()
	type fetched struct {
		ds  []*broker.Delivery
		err error
	}
	done := make(chan fetched, 1)
	go func() {
		ds, err := r.b.Fetch(context.Background(), []string{"t"}, 10)
		done <- fetched{ds, err}
	}()
	var sent []string
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Contains(sent, "xreadgroup-block") {
		if time.Now().After(deadline) {
			r.t.Fatalf("a Fetch sent %q and no blocking read", sent)
		}
		sent = append(sent, r.reads()...)
		time.Sleep(time.Millisecond)
	}
	r.publish(p)
	if f := <-done; f.err != nil || !slices.Equal(payloads(f.ds), []string{p}) {
		r.t.Fatalf("Fetch returned %q, err %v; want the job published during its wait", payloads(f.ds), f.err)
	}
	sent = append(sent, r.reads()...)
	if i := slices.Index(sent, "xreadgroup"); i < 0 || !slices.Contains(sent[i:], "xreadgroup-block") {
		r.t.Fatalf("Fetch sent %q; want a read without blocking, then a blocking one", sent)
	}
}

func payloads(ds []*broker.Delivery) []string {
	var out []string
	for _, d := range ds {
		out = append(out, string(d.Job.Payload))
	}
	return out
}
