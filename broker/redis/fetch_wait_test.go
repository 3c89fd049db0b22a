package redis_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/redis"
	"github.com/conveyor-jobs/conveyor/internal/redistest"
)

// TestFetchBlocksAtOnceAfterAnEmptyRead: on a single Redis, a Fetch of one
// topic whose previous read found nothing waiting sends a blocking
// XREADGROUP alone, which returns at once the jobs published meanwhile.
// Once such a read returns more than one job, the next Fetch reads without
// blocking again, the pause key in the same pipeline.
func TestFetchBlocksAtOnceAfterAnEmptyRead(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	log := &redistest.CommandLog{}
	rdb.AddHook(log)
	b, err := redis.New(rdb, &redis.Options{
		Namespace: srv.Namespace, Consumer: "a", Lease: time.Minute,
		Block: redis.MaxBlock, ClaimInterval: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	ctx := context.Background()
	publish := func(payloads ...string) {
		t.Helper()
		for _, p := range payloads {
			if _, err := b.Publish(ctx, broker.Message{Topic: "t", Payload: []byte(p)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// reads returns the reads log recorded since it was last called: GET
	// (of the pause key), xreadgroup, or xreadgroup-block.
	var sent []string
	reads := func() []string {
		for _, args := range log.TakeArgs() {
			switch name := strings.ToLower(fmt.Sprint(args[0])); {
			case name == "get":
				sent = append(sent, name)
			case name == "xreadgroup" && slices.ContainsFunc(args, func(a any) bool { return strings.EqualFold(fmt.Sprint(a), "block") }):
				sent = append(sent, "xreadgroup-block")
			case name == "xreadgroup":
				sent = append(sent, name)
			}
		}
		out := sent
		sent = nil
		return out
	}
	payloads := func(ds []*broker.Delivery) []string {
		var out []string
		for _, d := range ds {
			out = append(out, string(d.Job.Payload))
		}
		return out
	}
	fetch := func(step string, want ...string) []string {
		t.Helper()
		ds, err := b.Fetch(ctx, []string{"t"}, 10)
		if err != nil || !slices.Equal(payloads(ds), want) {
			t.Fatalf("%s: Fetch returned %q, err %v; want %q", step, payloads(ds), err, want)
		}
		return reads()
	}

	// The first Fetch finds nothing waiting and blocks; a job published
	// during the wait ends it.
	type fetched struct {
		ds  []*broker.Delivery
		err error
	}
	done := make(chan fetched, 1)
	go func() {
		ds, err := b.Fetch(ctx, []string{"t"}, 10)
		done <- fetched{ds, err}
	}()
	var first []string
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Contains(first, "xreadgroup-block") {
		if time.Now().After(deadline) {
			t.Fatalf("the first Fetch sent %q and no blocking read", first)
		}
		first = append(first, reads()...)
		time.Sleep(time.Millisecond)
	}
	publish("1")
	if f := <-done; f.err != nil || !slices.Equal(payloads(f.ds), []string{"1"}) {
		t.Fatalf("first Fetch returned %q, err %v; want the job published during its wait", payloads(f.ds), f.err)
	}
	first = append(first, reads()...)
	if i := slices.Index(first, "xreadgroup"); i < 0 || !slices.Contains(first[i:], "xreadgroup-block") {
		t.Fatalf("first Fetch sent %q; want a read without blocking, then a blocking one", first)
	}

	// Its read found nothing waiting: the next one blocks at once, and
	// returns the job waiting without a wait.
	publish("2")
	if got := fetch("second Fetch", "2"); !slices.Equal(got, []string{"xreadgroup-block"}) {
		t.Fatalf("second Fetch sent %q; want one blocking read alone", got)
	}
	// That read returned one job: the next blocks at once too, and returns
	// the three jobs waiting.
	publish("3", "4", "5")
	if got := fetch("third Fetch", "3", "4", "5"); !slices.Equal(got, []string{"xreadgroup-block"}) {
		t.Fatalf("third Fetch sent %q; want one blocking read alone", got)
	}
	// Three at once: the next Fetch reads without blocking, the pause key
	// read beside it.
	publish("6")
	if got := fetch("fourth Fetch", "6"); !slices.Equal(got, []string{"get", "xreadgroup"}) {
		t.Fatalf("fourth Fetch sent %q; want the pause key and a read without blocking, in one pipeline", got)
	}
}
