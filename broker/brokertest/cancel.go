package brokertest

import (
	"errors"
	"slices"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/job"
)

// canceller returns b's Canceller or skips the test.
func (e *env) canceller(b broker.Broker) broker.Canceller {
	e.t.Helper()
	return power[broker.Canceller](e.t, b, "Canceller")
}

// cancel calls Cancel and fails unless it returns want.
func (e *env) cancel(c broker.Canceller, topic, id string, want broker.CancelResult) {
	e.t.Helper()
	got, err := c.Cancel(e.ctx, topic, id)
	if err != nil {
		e.t.Fatalf("Cancel(%q, %q): %v", topic, id, err)
	}
	if got != want {
		e.t.Fatalf("Cancel(%q, %q) = %v, want %v", topic, id, got, want)
	}
}

// cancelNotFound fails unless Cancel returns an error wrapping ErrNotFound.
func (e *env) cancelNotFound(c broker.Canceller, topic, id, why string) {
	e.t.Helper()
	res, err := c.Cancel(e.ctx, topic, id)
	if !errors.Is(err, broker.ErrNotFound) {
		e.t.Fatalf("Cancel(%q, %q) of %s = %v, %v; want ErrNotFound", topic, id, why, res, err)
	}
}

// cancelledLetter checks that topic's dead letters are exactly the jobs
// with ids, in order, each recorded as cancelled while it waited (what).
func (e *env) cancelledLetters(b broker.Broker, topic string, what broker.CancelResult, ids ...string) []broker.DeadLetter {
	e.t.Helper()
	dls := e.deadLetters(dlAdmin(e.t, b), topic, 10)
	got := make([]string, len(dls))
	for i, dl := range dls {
		got[i] = dl.Job.ID
		want := broker.CancelFailure(topic, what, time.Time{})
		checkFailure(e.t, dl.Job.Failure, want)
	}
	if !slices.Equal(got, ids) {
		e.t.Fatalf("dead letters of %q = %q, want %q", topic, got, ids)
	}
	return dls
}

// testCancelQueued: a job waiting in its topic is removed and
// dead-lettered with reason cancelled, keeping its ID, payload and
// headers; the others are untouched; a second cancel finds nothing.
func testCancelQueued(e *env) {
	b := e.open("c1")
	c := e.canceller(b)
	topic := "cancel-queued"
	e.publish(b, broker.Message{Topic: topic, Payload: []byte("a"), ID: "job-a", Headers: map[string]string{"tenant": "t1"}})
	idB := e.publish(b, broker.Message{Topic: topic, Payload: []byte("b")})
	idC := e.publish(b, broker.Message{Topic: topic, Payload: []byte("c")})

	e.cancel(c, topic, "job-a", broker.CancelledQueued)
	e.cancel(c, topic, idC, broker.CancelledQueued) // a generated ID
	dls := e.cancelledLetters(b, topic, broker.CancelledQueued, "job-a", idC)
	if a := dls[0].Job; string(a.Payload) != "a" || a.Headers["tenant"] != "t1" || a.Attempt != 1 {
		e.t.Errorf("cancelled job = %+v, want payload a, header tenant=t1, attempt 1", a)
	}
	e.cancelNotFound(c, topic, "job-a", "a job cancelled already")

	d := e.fetchOne(b, topic)
	if d.Job.ID != idB {
		e.t.Fatalf("fetched %q, want the job not cancelled, %q", d.Job.ID, idB)
	}
	e.ack(b, d)
	e.expectNone(b, []string{topic}, 50*time.Millisecond, "cancelled jobs must not be delivered")
	e.settled(b, topic, 0, 2)
}

// testCancelDelayed: a job waiting for its due time is removed and
// dead-lettered with reason cancelled; it is never delivered.
func testCancelDelayed(e *env) {
	b := e.open("c1")
	c := e.canceller(b)
	topic := "cancel-delayed"
	e.publish(b, broker.Message{Topic: topic, Payload: []byte("later"), ID: "job-later", Delay: time.Hour})
	id := e.publish(b, broker.Message{Topic: topic, Payload: []byte("soon"), Delay: 200 * time.Millisecond})

	e.cancel(c, topic, "job-later", broker.CancelledDelayed)
	e.cancel(c, topic, id, broker.CancelledDelayed)
	dls := e.cancelledLetters(b, topic, broker.CancelledDelayed, "job-later", id)
	if string(dls[0].Job.Payload) != "later" || string(dls[1].Job.Payload) != "soon" {
		e.t.Errorf("cancelled payloads = %q, %q; want later, soon", dls[0].Job.Payload, dls[1].Job.Payload)
	}
	e.expectNone(b, []string{topic}, 400*time.Millisecond, "a cancelled delayed job must not be delivered")
	e.settled(b, topic, 0, 2)
	e.cancelNotFound(c, topic, id, "a delayed job cancelled already")
}

// testCancelRunning: for a delivered job, Cancel records a request that
// CancelRequested reports for that delivery only, to any consumer, until the
// delivery is settled; the job stays leased and is settled as usual. A
// retried job runs as a new delivery without the request.
func testCancelRunning(e *env) {
	b := e.open("c1")
	c := e.canceller(b)
	w := power[broker.CancelWatcher](e.t, b, "CancelWatcher")
	topic := "cancel-running"
	e.publish(b, broker.Message{Topic: topic, Payload: []byte("a"), ID: "run-a"})
	e.publish(b, broker.Message{Topic: topic, Payload: []byte("b"), ID: "run-b"})
	ds := e.fetchN(b, []string{topic}, 2, 2)
	requested := func(ds ...*broker.Delivery) []string {
		e.t.Helper()
		rs, err := w.CancelRequested(e.ctx, ds...)
		if err != nil {
			e.t.Fatalf("CancelRequested: %v", err)
		}
		return rs
	}
	if rs := requested(ds...); len(rs) != 0 {
		e.t.Fatalf("CancelRequested before any Cancel = %q, want none", rs)
	}
	e.cancel(c, topic, ds[0].Job.ID, broker.CancelRequested)
	if rs := requested(ds...); !slices.Equal(rs, []string{ds[0].Receipt}) {
		e.t.Fatalf("CancelRequested = %q, want [%q]", rs, ds[0].Receipt)
	}
	if rs := requested(nil, ds[0]); !slices.Equal(rs, []string{ds[0].Receipt}) {
		e.t.Fatalf("CancelRequested(nil, d) = %q, want [%q]", rs, ds[0].Receipt)
	}
	// The request does not settle the job: its lease is renewed and its
	// holder settles it.
	if err := b.Extend(e.ctx, ds...); err != nil {
		e.t.Fatalf("Extend of a job whose cancel was requested: %v", err)
	}
	e.cancel(c, topic, ds[0].Job.ID, broker.CancelRequested) // again: harmless
	f := job.Failure{Error: "context canceled", Reason: job.ReasonCancelled, Origin: topic, At: time.Now()}
	if err := b.DeadLetter(e.ctx, ds[0], f); err != nil {
		e.t.Fatalf("DeadLetter: %v", err)
	}
	e.cancelNotFound(c, topic, "run-a", "a job dead-lettered after its cancel")

	// A request for a job whose handler returned a retry before the server
	// saw it is dropped with the delivery: the retry is a new delivery.
	e.cancel(c, topic, "run-b", broker.CancelRequested)
	if err := b.Retry(e.ctx, ds[1], 0, job.Failure{Error: "boom", Reason: job.ReasonError}); err != nil {
		e.t.Fatalf("Retry: %v", err)
	}
	d := e.fetchOne(b, topic)
	if d.Job.ID != "run-b" || d.Job.Attempt != 2 {
		e.t.Fatalf("fetched %q attempt %d, want run-b attempt 2", d.Job.ID, d.Job.Attempt)
	}
	if rs := requested(d); len(rs) != 0 {
		e.t.Fatalf("CancelRequested of the retry = %q, want none", rs)
	}
	e.cancel(c, topic, "run-b", broker.CancelRequested)
	if rs := requested(d); !slices.Equal(rs, []string{d.Receipt}) {
		e.t.Fatalf("CancelRequested of the retry after a new Cancel = %q, want [%q]", rs, d.Receipt)
	}
	e.ack(b, d)
	e.cancelNotFound(c, topic, "run-b", "an acknowledged job")
	e.settled(b, topic, 0, 1)
}

// testCancelRedelivered: a cancel request follows a job whose holder lost
// its lease: the consumer it is redelivered to sees the request.
func testCancelRedelivered(e *env) {
	b1, b2 := e.open("c1"), e.open("c2")
	c := e.canceller(b1)
	w := power[broker.CancelWatcher](e.t, b2, "CancelWatcher")
	topic := "cancel-redelivered"
	e.publish(b1, broker.Message{Topic: topic, Payload: []byte("a"), ID: "lost"})
	d1 := e.fetchOne(b1, topic)
	e.cancel(c, topic, "lost", broker.CancelRequested)
	d2 := e.fetchOne(b2, topic) // after d1's lease expired
	rs, err := w.CancelRequested(e.ctx, d2)
	if err != nil {
		e.t.Fatalf("CancelRequested: %v", err)
	}
	if !slices.Equal(rs, []string{d2.Receipt}) {
		e.t.Fatalf("CancelRequested of the redelivery = %q, want [%q]", rs, d2.Receipt)
	}
	_ = d1
	if err := b2.DeadLetter(e.ctx, d2, job.Failure{Error: "context canceled", Reason: job.ReasonCancelled}); err != nil {
		e.t.Fatalf("DeadLetter: %v", err)
	}
	e.settled(b1, topic, 0, 1)
}

// testCancelNotFound: unknown IDs and topics are ErrNotFound, and so is a
// job that was acknowledged or dead-lettered.
func testCancelNotFound(e *env) {
	b := e.open("c1")
	c := e.canceller(b)
	topic := "cancel-missing"
	e.cancelNotFound(c, "cancel-never-used", "x", "a topic never used")
	e.publish(b, broker.Message{Topic: topic, Payload: []byte("a"), ID: "acked"})
	e.publish(b, broker.Message{Topic: topic, Payload: []byte("b"), ID: "dead"})
	e.cancelNotFound(c, topic, "nope", "an unknown ID")
	e.cancelNotFound(c, topic, "0-1", "an unknown entry ID")
	ds := e.fetchN(b, []string{topic}, 2, 2)
	e.ack(b, ds[0])
	if err := b.DeadLetter(e.ctx, ds[1], job.Failure{Error: "x", Reason: job.ReasonPermanent}); err != nil {
		e.t.Fatalf("DeadLetter: %v", err)
	}
	e.cancelNotFound(c, topic, "acked", "an acknowledged job")
	e.cancelNotFound(c, topic, "dead", "a dead-lettered job")
}
