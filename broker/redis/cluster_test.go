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

// TestCluster runs the round trip, retry, delayed, dead-letter, recovery and
// admin paths on a 3-master Redis Cluster, with topics in different slots.
func TestCluster(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3)
	rdb := c.Client(t)
	ctx := context.Background()
	clk := newClock()
	newBroker := func(consumer string) *redis.Broker {
		b, err := redis.New(rdb, &redis.Options{
			Namespace: c.Namespace, Consumer: consumer,
			Lease: 200 * time.Millisecond, Block: 50 * time.Millisecond, ClaimInterval: 20 * time.Millisecond,
			Now: clk.Now,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		return b
	}
	a, bb := newBroker("a"), newBroker("b")
	topics := []string{"alpha", "beta", "gamma", "delta"}
	var ms []broker.Message
	for _, topic := range topics {
		ms = append(ms, broker.Message{Topic: topic, Payload: []byte(topic)})
	}
	ms = append(ms, broker.Message{Topic: "alpha", Payload: []byte("later"), Delay: time.Minute})
	if _, err := a.PublishBatch(ctx, ms); err != nil {
		t.Fatal(err)
	}

	// Round trip over several slots in one Fetch.
	got := map[string]*broker.Delivery{}
	for _, d := range fetchN(t, a, topics, len(topics)) {
		got[d.Job.Topic] = d
		if string(d.Job.Payload) != d.Job.Topic {
			t.Fatalf("payload %q on %s", d.Job.Payload, d.Job.Topic)
		}
	}
	if len(got) != len(topics) {
		t.Fatalf("got topics %v", got)
	}
	if err := a.Ack(ctx, got["alpha"], got["beta"]); err != nil {
		t.Fatal(err)
	}

	// Retry now and later, snooze, dead-letter.
	if err := a.Retry(ctx, got["gamma"], 0, job.Failure{Error: "x"}); err != nil {
		t.Fatal(err)
	}
	if err := a.Retry(ctx, got["delta"], time.Minute, job.Failure{Error: "y"}); err != nil {
		t.Fatal(err)
	}
	d := fetchN(t, a, topics, 1)[0]
	if d.Job.Topic != "gamma" || d.Job.Attempt != 2 {
		t.Fatalf("after retry %+v", d.Job)
	}
	if err := a.DeadLetter(ctx, d, job.Failure{Error: "z", Reason: job.ReasonPermanent}); err != nil {
		t.Fatal(err)
	}
	dl := fetchN(t, a, []string{"gamma.dlq", "alpha"}, 1)[0]
	if dl.Job.Topic != "gamma.dlq" || dl.Job.Failure == nil || dl.Job.Failure.Origin != "gamma" {
		t.Fatalf("dead letter %+v", dl.Job)
	}
	if err := a.Ack(ctx, dl); err != nil {
		t.Fatal(err)
	}

	// Delayed jobs in two slots become due together.
	fetchNone(t, a, topics, 100*time.Millisecond)
	clk.Advance(time.Minute)
	due := fetchN(t, a, topics, 2)
	seen := map[string]bool{}
	for _, d := range due {
		seen[d.Job.Topic+"/"+string(d.Job.Payload)] = true
	}
	if !seen["alpha/later"] || !seen["delta/delta"] {
		t.Fatalf("due jobs %v", seen)
	}

	// Recovery by another consumer after a's lease expires.
	r := fetchN(t, bb, topics, 2)
	for _, d := range r {
		if d.Job.Attempt < 2 {
			t.Fatalf("recovered %+v", d.Job)
		}
	}
	if err := bb.Ack(ctx, r...); err != nil {
		t.Fatal(err)
	}

	// Admin across slots.
	if err := a.DeadLetter(ctx, &broker.Delivery{Job: job.Job{Topic: "beta"}, Receipt: "1-1"}, job.Failure{}); err == nil || strings.Contains(err.Error(), "CROSSSLOT") {
		t.Fatalf("dead-letter of an unknown entry: %v", err)
	}
	ts, err := a.Topics(ctx)
	if err != nil || len(ts) != 4 {
		t.Fatalf("topics %v %v", ts, err)
	}
	for _, topic := range topics {
		info, err := a.Inspect(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		if info.Length != 0 || info.Pending != 0 {
			t.Fatalf("%s: %+v", topic, info)
		}
	}
	if err := a.Check(ctx); err != nil {
		t.Fatal(err)
	}

	// Close ends a Fetch polling several slots.
	p := newBroker("poller")
	errc := make(chan error, 1)
	go func() {
		for {
			ds, err := p.Fetch(ctx, []string{"empty-1", "empty-2"}, 1)
			if err != nil || len(ds) > 0 {
				errc <- err
				return
			}
		}
	}()
	time.Sleep(20 * time.Millisecond) // let it poll
	_ = p.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, broker.ErrClosed) {
			t.Fatalf("Fetch after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Fetch did not return after Close")
	}

	// Open with comma-separated seed addresses makes a cluster client. An
	// IPv6 literal may be among them (this one answers nothing: the nodes
	// listen on 127.0.0.1 only, and the client uses the others).
	o, err := redis.Open("redis://"+strings.Join(c.Addrs, ",")+",[::1]:1", &redis.Options{Namespace: c.Namespace + "-open", Block: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if _, ok := o.Client().(*goredis.ClusterClient); !ok {
		t.Fatalf("Open made a %T", o.Client())
	}
	if _, err := o.Publish(ctx, broker.Message{Topic: "t", Payload: []byte("p")}); err != nil {
		t.Fatal(err)
	}
	if err := o.Ack(ctx, fetchN(t, o, []string{"t", "u"}, 1)...); err != nil {
		t.Fatal(err)
	}

	// Streams written by XADD alone, on every master, are listed.
	raw := c.Namespace + "-raw"
	rawTopics := []string{"r1", "r2", "r3", "r4", "r5", "r6"}
	masters := map[string]bool{}
	for _, topic := range rawTopics {
		key := raw + ":{" + topic + "}:stream"
		if topic == "r6" {
			key = raw + ":{" + topic + "}:dlq"
		}
		xadd(t, rdb, key)
		m, err := rdb.MasterForKey(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		masters[m.Options().Addr] = true
	}
	if len(masters) != len(c.Addrs) {
		t.Fatalf("the raw topics sit on %d of %d masters; pick names spread over all", len(masters), len(c.Addrs))
	}
	rb, err := redis.New(rdb, &redis.Options{Namespace: raw})
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close()
	if got := listTopics(t, rb); !slices.Equal(got, rawTopics) {
		t.Fatalf("Topics on the cluster = %v, want %v", got, rawTopics)
	}
	if info, err := rb.Inspect(ctx, "r1"); err != nil || info.Length != 1 || info.Lag != 1 {
		t.Fatalf("Inspect(r1) = %+v, %v; want length 1, lag 1", info, err)
	}
}
