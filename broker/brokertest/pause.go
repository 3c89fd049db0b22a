package brokertest

import (
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
)

// paused checks what Paused and, when b has one, Inspect say of topic.
func (e *env) paused(b broker.Broker, topic string, want bool) {
	e.t.Helper()
	p := power[broker.Pauser](e.t, b, "Pauser")
	got, err := p.Paused(e.ctx, topic)
	if err != nil {
		e.t.Fatalf("Paused(%q): %v", topic, err)
	}
	if got != want {
		e.t.Fatalf("Paused(%q) = %v, want %v", topic, got, want)
	}
	if in, ok := b.(broker.Inspector); ok {
		info, err := in.Inspect(e.ctx, topic)
		if err != nil {
			e.t.Fatalf("Inspect(%q): %v", topic, err)
		}
		if info.Paused != want {
			e.t.Fatalf("Inspect(%q).Paused = %v, want %v", topic, info.Paused, want)
		}
	}
}

func (e *env) pause(b broker.Broker, topic string) {
	e.t.Helper()
	if err := power[broker.Pauser](e.t, b, "Pauser").Pause(e.ctx, topic); err != nil {
		e.t.Fatalf("Pause(%q): %v", topic, err)
	}
}

func (e *env) resume(b broker.Broker, topic string) {
	e.t.Helper()
	if err := power[broker.Pauser](e.t, b, "Pauser").Resume(e.ctx, topic); err != nil {
		e.t.Fatalf("Resume(%q): %v", topic, err)
	}
}

// testPause: a paused topic yields nothing, with Fetch or FetchWeighted,
// while the others flow; its jobs stay queued and come, in order, after
// Resume.
func testPause(e *env) {
	t := e.t
	b := e.open("c1")
	e.publishN(b, "p-held", 3)
	e.publishN(b, "p-free", 3)
	e.pause(b, "p-held")
	e.pause(b, "p-held") // harmless twice
	e.paused(b, "p-held", true)
	e.paused(b, "p-free", false)
	both := []string{"p-held", "p-free"}
	for _, d := range e.fetchN(b, both, 3, 10) {
		if d.Job.Topic != "p-free" {
			t.Fatalf("a job of the paused topic was fetched: %v", describe([]*broker.Delivery{d}))
		}
		e.ack(b, d)
	}
	e.expectNone(b, both, 3*e.opts.Lease/2, "fetch of a paused topic")
	// A job published to the paused topic while a Fetch waits for new jobs
	// does not end the wait.
	waited := make(chan []*broker.Delivery, 1)
	go func() {
		ds, _ := b.Fetch(e.ctx, both, 10)
		waited <- ds
	}()
	e.publish(b, broker.Message{Topic: "p-held", Payload: []byte("p-held-3")})
	if ds := <-waited; len(ds) > 0 {
		t.Fatalf("a waiting Fetch returned a job of the paused topic: %v", describe(ds))
	}
	if p, ok := b.(broker.PriorityFetcher); ok {
		for _, strict := range []bool{false, true} {
			ds := e.fetchWeighted(p, []broker.TopicWeight{{Topic: "p-held", Weight: 5}, {Topic: "p-free", Weight: 1}}, 5, strict)
			if len(ds) > 0 {
				t.Fatalf("FetchWeighted (strict %v) returned jobs of a paused topic: %v", strict, describe(ds))
			}
		}
	}
	e.resume(b, "p-held")
	e.paused(b, "p-held", false)
	ds := e.fetchN(b, both, 4, 10)
	if got := payloads(ds); got[0] != "p-held-0" || got[3] != "p-held-3" {
		t.Fatalf("after Resume got %v, want p-held-0..3 in order", got)
	}
	e.ack(b, ds...)
	e.resume(b, "p-held") // harmless when not paused
}

// testPauseWaitingFetch: Resume reaches a Fetch that is waiting for jobs.
func testPauseWaitingFetch(e *env) {
	b := e.open("c1")
	e.pause(b, "pw")
	e.publishN(b, "pw", 1)
	done := make(chan []*broker.Delivery, 1)
	go func() {
		var ds []*broker.Delivery
		deadline := time.Now().Add(waitLimit)
		for len(ds) == 0 && time.Now().Before(deadline) && e.ctx.Err() == nil {
			ds, _ = b.Fetch(e.ctx, []string{"pw"}, 1)
		}
		done <- ds
	}()
	e.resume(b, "pw")
	ds := <-done
	if len(ds) != 1 {
		e.t.Fatalf("a Fetch waiting on a resumed topic got %d jobs, want 1", len(ds))
	}
	e.ack(b, ds...)
}

// testPauseDelayed: delayed jobs of a paused topic wait past their due time
// until Resume.
func testPauseDelayed(e *env) {
	b := e.open("c1")
	e.pause(b, "pd")
	e.publish(b, broker.Message{Topic: "pd", Payload: []byte("later"), Delay: e.opts.Lease / 3})
	e.expectNone(b, []string{"pd"}, e.opts.Lease, "delayed job of a paused topic")
	e.resume(b, "pd")
	d := e.fetchOne(b, "pd")
	if string(d.Job.Payload) != "later" {
		e.t.Fatalf("got %q after Resume, want the delayed job", d.Job.Payload)
	}
	e.ack(b, d)
}

// testPauseLeases: a job fetched before the pause is still settled; one
// whose lease expires while its topic is paused is not redelivered until
// Resume.
func testPauseLeases(e *env) {
	b1, b2 := e.open("c1"), e.open("c2")
	e.publishN(b1, "pl", 2)
	ds := e.fetchN(b1, []string{"pl"}, 2, 2)
	e.pause(b1, "pl")
	e.ack(b1, ds[0]) // settling is not fetching
	e.expectNone(b2, []string{"pl"}, 2*e.opts.Lease, "expired lease of a paused topic")
	e.resume(b2, "pl")
	d := e.fetchOne(b2, "pl")
	if d.Job.ID != ds[1].Job.ID {
		e.t.Fatalf("after Resume got job %s, want the expired one %s", d.Job.ID, ds[1].Job.ID)
	}
	e.ack(b2, d)
}

// testPauseKept: the pause is kept in the store: a new broker on it sees
// the topic paused, and may resume it.
func testPauseKept(e *env) {
	b1 := e.open("c1")
	e.publishN(b1, "pk", 1)
	e.pause(b1, "pk")
	if err := b1.Close(); err != nil {
		e.t.Fatalf("Close: %v", err)
	}
	b2 := e.open("c2")
	e.paused(b2, "pk", true)
	e.expectNone(b2, []string{"pk"}, e.opts.Lease/2, "fetch of a topic paused by another broker")
	e.resume(b2, "pk")
	e.ack(b2, e.fetchOne(b2, "pk"))
}
