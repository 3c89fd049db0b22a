package brokertest

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
)

func testRoundTrip(e *env) {
	t := e.t
	b := e.open("c1")
	before := time.Now()
	m := broker.Message{
		Topic:   "orders",
		ID:      "order-42",
		Payload: []byte(`{"order":42}`),
		Headers: map[string]string{"tenant": "acme", "traceparent": "00-abc-01"},
	}
	id := e.publish(b, m)
	if id != m.ID {
		t.Errorf("Publish returned ID %q, want the given %q", id, m.ID)
	}
	m.Payload[0] = 'X' // the broker must have copied it
	m.Headers["tenant"] = "changed"
	d := e.fetchOne(b, "orders")
	after := time.Now()
	j := d.Job
	if j.ID != "order-42" || j.Topic != "orders" || string(j.Payload) != `{"order":42}` {
		t.Errorf("got ID %q topic %q payload %q", j.ID, j.Topic, j.Payload)
	}
	if j.Header("tenant") != "acme" || j.Header("traceparent") != "00-abc-01" || len(j.Headers) != 2 {
		t.Errorf("Headers = %v", j.Headers)
	}
	if j.Attempt != 1 {
		t.Errorf("Attempt = %d, want 1", j.Attempt)
	}
	if j.Failure != nil {
		t.Errorf("Failure = %+v, want nil", j.Failure)
	}
	if j.EnqueuedAt.Before(before.Add(-time.Second)) || j.EnqueuedAt.After(after.Add(time.Second)) {
		t.Errorf("EnqueuedAt = %v, want between %v and %v", j.EnqueuedAt, before, after)
	}
	if d.Receipt == "" {
		t.Error("Receipt is empty")
	}
	e.ack(b, d)
	e.expectNone(b, []string{"orders"}, 0, "after Ack")
}

func testGeneratedIDs(e *env) {
	t := e.t
	b := e.open("c1")
	const n = 50
	published := e.publishN(b, "gen", n)
	seen := make(map[string]bool)
	for _, id := range published {
		if seen[id] {
			t.Errorf("generated ID %q twice", id)
		}
		seen[id] = true
	}
	ds := e.fetchN(b, []string{"gen"}, n, n)
	if got := sortedCopy(ids(ds)); !slices.Equal(got, sortedCopy(published)) {
		t.Errorf("fetched IDs %v, want the published %v", got, published)
	}
	e.ack(b, ds...)
}

func testPublishBatch(e *env) {
	t := e.t
	b := e.open("c1")
	ms := []broker.Message{
		{Topic: "batch-a", Payload: []byte("a0")},
		{Topic: "batch-b", Payload: []byte("b0"), ID: "given"},
		{Topic: "batch-a", Payload: []byte("a1"), Headers: map[string]string{"k": "v"}},
		{Topic: "batch-a", Payload: []byte("a2")},
	}
	got, err := b.PublishBatch(e.ctx, e.orderedAll(ms))
	if err != nil {
		t.Fatalf("PublishBatch: %v", err)
	}
	if len(got) != len(ms) {
		t.Fatalf("PublishBatch returned %d IDs, want %d", len(got), len(ms))
	}
	if got[1] != "given" {
		t.Errorf("ID[1] = %q, want the given ID", got[1])
	}
	if got[0] == "" || got[2] == "" || got[3] == "" || got[0] == got[2] || got[2] == got[3] {
		t.Errorf("generated IDs not unique and non-empty: %q", got)
	}
	as := e.fetchN(b, []string{"batch-a"}, 3, 10)
	if p := payloads(as); !slices.Equal(p, []string{"a0", "a1", "a2"}) {
		t.Errorf("batch-a payloads %q, want a0 a1 a2 in order", p)
	}
	if !slices.Equal(ids(as), []string{got[0], got[2], got[3]}) {
		t.Errorf("batch-a IDs %q, want %q", ids(as), []string{got[0], got[2], got[3]})
	}
	if as[1].Job.Header("k") != "v" {
		t.Errorf("headers of a1 = %v", as[1].Job.Headers)
	}
	bs := e.fetchN(b, []string{"batch-b"}, 1, 10)
	if bs[0].Job.ID != "given" || string(bs[0].Job.Payload) != "b0" {
		t.Errorf("batch-b got %s", describe(bs))
	}
	e.ack(b, append(as, bs...)...)

	if ids, err := b.PublishBatch(e.ctx, nil); err != nil || len(ids) != 0 {
		t.Errorf("PublishBatch(nil) = %q, %v; want no IDs and no error", ids, err)
	}
}

func testInvalidMessage(e *env) {
	b := e.open("c1")
	if _, err := b.Publish(e.ctx, broker.Message{Payload: []byte("x")}); !errors.Is(err, broker.ErrInvalidMessage) {
		e.t.Errorf("Publish with no topic: err = %v, want ErrInvalidMessage", err)
	}
	if _, err := b.PublishBatch(e.ctx, []broker.Message{{Topic: "ok"}, {}}); !errors.Is(err, broker.ErrInvalidMessage) {
		e.t.Errorf("PublishBatch with no topic: err = %v, want ErrInvalidMessage", err)
	}
}

func testFIFO(e *env) {
	t := e.t
	b := e.open("c1")
	const n = 20
	ms := make([]broker.Message, n)
	want := make([]string, n)
	for i := range ms {
		want[i] = fmt.Sprintf("job-%02d", i)
		ms[i] = broker.Message{Topic: "fifo", Payload: []byte(want[i])}
	}
	// Half one by one, half in a batch: both keep order.
	for _, m := range ms[:n/2] {
		e.publish(b, m)
	}
	if _, err := b.PublishBatch(e.ctx, e.orderedAll(ms[n/2:])); err != nil {
		t.Fatalf("PublishBatch: %v", err)
	}
	var got []*broker.Delivery
	for len(got) < n {
		ds := e.fetchN(b, []string{"fifo"}, min(3, n-len(got)), 3)
		got = append(got, ds...)
		e.ack(b, ds...)
	}
	if p := payloads(got); !slices.Equal(p, want) {
		t.Errorf("fetched in order %q, want %q", p, want)
	}
}

func testManyTopics(e *env) {
	t := e.t
	b := e.open("c1")
	topics := []string{"t-a", "t-b", "t-c"}
	for _, tp := range topics {
		e.publishN(b, tp, 3)
	}
	e.publishN(b, "t-other", 2)
	ds := e.fetchN(b, topics, 9, 4)
	per := map[string][]string{}
	for _, d := range ds {
		per[d.Job.Topic] = append(per[d.Job.Topic], string(d.Job.Payload))
	}
	for _, tp := range topics {
		want := []string{tp + "-0", tp + "-1", tp + "-2"}
		if !slices.Equal(per[tp], want) {
			t.Errorf("topic %s: got %q, want %q in order", tp, per[tp], want)
		}
	}
	if len(per["t-other"]) > 0 {
		t.Errorf("fetched a topic not asked for: %q", per["t-other"])
	}
	e.ack(b, ds...)
	other := e.fetchN(b, []string{"t-other"}, 2, 10)
	e.ack(b, other...)
}

func testFetchMax(e *env) {
	t := e.t
	b := e.open("c1")
	e.publishN(b, "max", 10)
	ds := e.fetchN(b, []string{"max"}, 1, 1)
	rest := e.fetchN(b, []string{"max"}, 9, 3) // fetchN fails on any call returning > 3
	e.ack(b, append(ds, rest...)...)
	if _, err := b.Fetch(e.ctx, []string{"max"}, 3); err != nil {
		t.Errorf("Fetch of an empty topic: %v", err)
	}
}

func testDelayed(e *env) {
	t := e.t
	b := e.open("c1")
	delay := 2 * b.Lease()
	start := time.Now()
	due := start.Add(delay)
	e.publish(b, broker.Message{Topic: "later", Payload: []byte("delay"), Delay: delay})
	e.publish(b, broker.Message{Topic: "later", Payload: []byte("at"), ProcessAt: due})
	e.publish(b, broker.Message{Topic: "later", Payload: []byte("past"), ProcessAt: start.Add(-time.Hour)})
	e.publish(b, broker.Message{Topic: "later", Payload: []byte("now")})

	early := e.fetchN(b, []string{"later"}, 2, 10)
	if got := sortedCopy(payloads(early)); !slices.Equal(got, []string{"now", "past"}) {
		t.Fatalf("first fetch got %q, want the jobs due now", got)
	}
	e.ack(b, early...)
	var late []*broker.Delivery
	deadline := time.Now().Add(waitLimit + delay)
	for len(late) < 2 && time.Now().Before(deadline) {
		ds := e.fetch(b, []string{"later"}, 10)
		now := time.Now()
		for _, d := range ds {
			if now.Before(due.Add(-skew)) {
				t.Errorf("%q delivered %v before due", d.Job.Payload, due.Sub(now))
			}
			if d.Job.Attempt != 1 {
				t.Errorf("%q Attempt = %d, want 1", d.Job.Payload, d.Job.Attempt)
			}
		}
		late = append(late, ds...)
	}
	if got := sortedCopy(payloads(late)); !slices.Equal(got, []string{"at", "delay"}) {
		t.Fatalf("delayed jobs: got %q, want at and delay", got)
	}
	e.ack(b, late...)
}
