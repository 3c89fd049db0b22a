// Package dashboardtest seeds a Redis namespace with jobs in every state for the
// dashboard's tests: its handler tests and its browser test read the same seed.
//
// Every helper fails the test through t on error; none of them sleeps, and Fetch polls
// with a deadline.
package dashboardtest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/redis"
	"github.com/conveyor-jobs/conveyor/internal/redistest"
	"github.com/conveyor-jobs/conveyor/job"
)

// Counts the seed leaves behind (see Seed).
const (
	OrchestrateLength  = 6 // 10 published; 4 settled by retry or dead letter
	OrchestratePending = 1
	OrchestrateDelayed = 2 // one retry, one published with a delay
	OrchestrateDead    = 3
	SummarizeLength    = 4
	SummarizePending   = 2
	SummarizeDead      = 1
)

// Fixture is a Redis namespace seeded with jobs in every state.
type Fixture struct {
	Server  *redistest.Server
	Broker  *redis.Broker // the dashboard's broker
	WorkerA *redis.Broker // the consumer that holds orchestrate's deliveries
	WorkerB *redis.Broker // the consumer that holds summarize's deliveries
}

// Seed opens the dashboard's broker and two workers on srv's namespace and fills two
// topics:
//
//	orchestrate: 10 published and 1 delayed by an hour (ID later-1); worker A
//	  fetches 5: keeps 1 pending, retries 1 in an hour, dead-letters 3.
//	summarize: 5 published; worker B fetches 3: keeps 2 pending,
//	  dead-letters 1.
//
// The brokers are closed at cleanup.
func Seed(t testing.TB, srv *redistest.Server) *Fixture {
	t.Helper()
	f := &Fixture{
		Server:  srv,
		Broker:  OpenBroker(t, srv, "dashboard"),
		WorkerA: OpenBroker(t, srv, "worker-a-4121"),
		WorkerB: OpenBroker(t, srv, "worker-b-4177"),
	}
	ctx := context.Background()
	Publish(t, f.Broker, "orchestrate", 10)
	if _, err := f.Broker.Publish(ctx, broker.Message{Topic: "orchestrate", ID: "later-1", Payload: []byte(`{"prompt":"tomorrow"}`), Delay: time.Hour}); err != nil {
		t.Fatal(err)
	}
	ds := Fetch(t, f.WorkerA, "orchestrate", 5)
	if err := f.WorkerA.Retry(ctx, ds[1], time.Hour, job.Failure{Error: "upstream 503", Reason: job.ReasonError, Origin: "orchestrate", At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	for i, d := range ds[2:5] {
		fl := job.Failure{
			Error:   fmt.Sprintf("model refused: context length exceeded (%d tokens)", 9000+i),
			Reason:  job.ReasonExhausted,
			Handler: "orchestrate.Plan",
			Origin:  "orchestrate",
			At:      time.Now(),
		}
		if err := f.WorkerA.DeadLetter(ctx, d, fl); err != nil {
			t.Fatal(err)
		}
	}
	Publish(t, f.Broker, "summarize", 5)
	ds = Fetch(t, f.WorkerB, "summarize", 3)
	if err := f.WorkerB.DeadLetter(ctx, ds[2], job.Failure{Error: "invalid character 'x' looking for beginning of value", Reason: job.ReasonUndecodable, Origin: "summarize", At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	return f
}

// OpenBroker opens a broker on srv's namespace as consumer, closed at cleanup. It
// recovers and promotes nothing during a test.
func OpenBroker(t testing.TB, srv *redistest.Server, consumer string) *redis.Broker {
	t.Helper()
	b, err := redis.Open(srv.URL(), &redis.Options{
		Namespace:     srv.Namespace,
		Consumer:      consumer,
		Block:         50 * time.Millisecond,
		ClaimInterval: time.Hour, // no recovery or promotion during a test
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// Publish publishes n JSON jobs to topic.
func Publish(t testing.TB, b broker.Broker, topic string, n int) {
	t.Helper()
	ms := make([]broker.Message, n)
	for i := range ms {
		ms[i] = broker.Message{
			Topic:   topic,
			Payload: []byte(fmt.Sprintf(`{"run":"r-%03d","prompt":"step %d of the plan","tokens":%d}`, i, i, 100*i)),
			Headers: map[string]string{"tenant": "acme"},
		}
	}
	if _, err := b.PublishBatch(context.Background(), ms); err != nil {
		t.Fatal(err)
	}
}

// Fetch fetches exactly n deliveries of topic, failing after a deadline.
func Fetch(t testing.TB, b broker.Broker, topic string, n int) []*broker.Delivery {
	t.Helper()
	var out []*broker.Delivery
	deadline := time.Now().Add(5 * time.Second)
	for len(out) < n {
		if time.Now().After(deadline) {
			t.Fatalf("fetched %d of %d from %s", len(out), n, topic)
		}
		ds, err := b.Fetch(context.Background(), []string{topic}, n-len(out))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ds...)
	}
	return out
}

// Inspect returns topic's state.
func Inspect(t testing.TB, b broker.Inspector, topic string) *broker.TopicInfo {
	t.Helper()
	info, err := b.Inspect(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// DeadIDs returns the IDs of topic's dead letters.
func DeadIDs(t testing.TB, b *redis.Broker, topic string) []string {
	t.Helper()
	dls, err := b.DeadLetters(context.Background(), topic, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(dls))
	for i, d := range dls {
		ids[i] = d.ID
	}
	return ids
}
