package brokertest

import (
	"errors"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/job"
)

// Unique jobs. A unique key (Message.UniqueKey) is held by one job of its
// topic from its publication while the job is delayed, queued, running or
// waiting to retry; the ack releases it (or keeps it until UniqueFor after
// the job's EnqueuedAt), the dead-lettering releases it, and a replay takes
// it again. Publishing while it is held enqueues nothing and returns the
// holder's ID with a *broker.DuplicateError.

// duplicateOf publishes m, expects it refused as a duplicate held by want,
// and returns nothing.
func (e *env) duplicateOf(b broker.Broker, m broker.Message, want, when string) {
	e.t.Helper()
	id, err := b.Publish(e.ctx, m)
	if !errors.Is(err, broker.ErrDuplicate) {
		e.t.Fatalf("%s: Publish(key %q) = %q, %v; want ErrDuplicate", when, m.UniqueKey, id, err)
	}
	if id != want {
		e.t.Errorf("%s: duplicate Publish returned ID %q, want the holder's %q", when, id, want)
	}
	var de *broker.DuplicateError
	if !errors.As(err, &de) {
		e.t.Fatalf("%s: error %v is not a *broker.DuplicateError", when, err)
	}
	if de.ID != want || de.Key != m.UniqueKey || de.Topic != m.Topic {
		e.t.Errorf("%s: DuplicateError = %+v, want topic %q, key %q, ID %q", when, *de, m.Topic, m.UniqueKey, want)
	}
}

// checkUnique checks the unique fields a job carries.
func checkUnique(e *env, j *job.Job, key string, keep time.Duration, where string) {
	e.t.Helper()
	if j.UniqueKey != key || j.UniqueFor != keep {
		e.t.Errorf("%s: UniqueKey, UniqueFor = %q, %v; want %q, %v", where, j.UniqueKey, j.UniqueFor, key, keep)
	}
}

// testUniqueHeld: the key is held while the job is queued, running, waiting
// to retry, snoozed and delayed; the job keeps its ID and key throughout;
// the ack releases it; keys are per topic.
func testUniqueHeld(e *env) {
	t := e.t
	b := e.open("c1")
	m := broker.Message{Topic: "u", Payload: []byte("p"), UniqueKey: "k"}
	id := e.publish(b, m)
	e.duplicateOf(b, m, id, "queued")
	e.duplicateOf(b, broker.Message{Topic: "u", ID: "other", UniqueKey: "k"}, id, "queued, other ID")
	e.publish(b, broker.Message{Topic: "u2", Payload: []byte("p"), UniqueKey: "k"}) // another topic: another key space

	d := e.fetchOne(b, "u")
	if d.Job.ID != id || string(d.Job.Payload) != "p" {
		t.Fatalf("fetched %s, want the first job %s", describe([]*broker.Delivery{d}), id)
	}
	checkUnique(e, &d.Job, "k", 0, "delivered")
	e.duplicateOf(b, m, id, "running")

	delay := b.Lease()
	retried := time.Now()
	if err := b.Retry(e.ctx, d, delay, job.Failure{Error: "boom", Reason: job.ReasonError}); err != nil {
		t.Fatalf("Retry: %v", err)
	}
	e.duplicateOf(b, m, id, "waiting to retry")
	old := d
	if err := b.Ack(e.ctx, old); err != nil {
		t.Fatalf("Ack of a delivery already retried: %v", err)
	}
	e.duplicateOf(b, m, id, "waiting to retry, after a stale Ack of its last delivery")
	d = e.fetchAfter(b, retried.Add(delay), "u")
	if d.Job.ID != id || d.Job.Attempt != 2 {
		t.Fatalf("retried job: ID %q attempt %d, want %q attempt 2", d.Job.ID, d.Job.Attempt, id)
	}
	checkUnique(e, &d.Job, "k", 0, "retried")
	if err := b.Snooze(e.ctx, d, 0); err != nil {
		t.Fatalf("Snooze: %v", err)
	}
	e.duplicateOf(b, m, id, "snoozed")
	d = e.fetchOne(b, "u")
	if d.Job.ID != id {
		t.Fatalf("snoozed job has ID %q, want %q", d.Job.ID, id)
	}
	e.ack(b, d)

	// Released by the ack: a new job takes the key.
	id2 := e.publish(b, m)
	if id2 == id {
		t.Fatalf("job published after the ack has the acked job's ID %q", id)
	}
	e.duplicateOf(b, m, id2, "new holder")

	// A delayed job holds its key too.
	later := broker.Message{Topic: "u", Payload: []byte("later"), UniqueKey: "later", Delay: time.Hour}
	lid := e.publish(b, later)
	e.duplicateOf(b, later, lid, "delayed")
	e.settled(b, "u", 2, 0)
}

// testUniqueKept: with UniqueFor, the ack keeps the key until UniqueFor
// after the job's EnqueuedAt, and no longer; a job acked after that time
// releases it at once.
func testUniqueKept(e *env) {
	t := e.t
	b := e.open("c1")
	hour := broker.Message{Topic: "kept", Payload: []byte("h"), UniqueKey: "hourly", UniqueFor: time.Hour}
	id := e.publish(b, hour)
	d := e.fetchOne(b, "kept")
	checkUnique(e, &d.Job, "hourly", time.Hour, "delivered")
	e.ack(b, d)
	e.duplicateOf(b, hour, id, "acked, kept for an hour after its enqueue")

	// The window counts from the enqueue, not from the ack.
	keep := b.Lease()
	short := broker.Message{Topic: "kept", Payload: []byte("s"), UniqueKey: "short", UniqueFor: keep}
	published := time.Now()
	sid := e.publish(b, short)
	d = e.fetchOne(b, "kept")
	if d.Job.ID != sid {
		t.Fatalf("fetched %q, want %q", d.Job.ID, sid)
	}
	e.duplicateOf(b, short, sid, "running, UniqueFor not over")
	eventually(t, waitLimit, "UniqueFor to pass", func() bool { return time.Since(published) > keep+10*skew })
	e.ack(b, d)
	if _, err := b.Publish(e.ctx, short); err != nil {
		t.Fatalf("Publish after an ack later than EnqueuedAt + UniqueFor: %v (the key must be free)", err)
	}

	// A kept key ends with its window.
	brief := broker.Message{Topic: "kept2", Payload: []byte("b"), UniqueKey: "brief", UniqueFor: keep}
	e.publish(b, brief)
	e.ack(b, e.fetchOne(b, "kept2"))
	eventually(t, waitLimit+keep, "the kept key to be released after UniqueFor", func() bool {
		_, err := b.Publish(e.ctx, brief)
		if err != nil && !errors.Is(err, broker.ErrDuplicate) {
			t.Fatalf("Publish: %v", err)
		}
		return err == nil
	})
}

// testUniqueDeadLetter: a dead letter releases its key; replaying it takes
// the key again, and fails with ErrDuplicate, leaving the dead letter, when
// another job took the key meanwhile.
func testUniqueDeadLetter(e *env) {
	t := e.t
	b := e.open("c1")
	m := broker.Message{Topic: "dl", Payload: []byte("first"), UniqueKey: "k", UniqueFor: time.Hour}
	id1 := e.publish(b, m)
	d := e.fetchOne(b, "dl")
	if err := b.DeadLetter(e.ctx, d, job.Failure{Error: "bad", Reason: job.ReasonPermanent}); err != nil {
		t.Fatalf("DeadLetter: %v", err)
	}
	// Released, though UniqueFor is an hour: a dead letter blocks nothing.
	m2 := broker.Message{Topic: "dl", Payload: []byte("second"), UniqueKey: "k"}
	id2 := e.publish(b, m2)
	a, ok := b.(broker.DeadLetterAdmin)
	if !ok {
		e.settled(b, "dl", 1, 1)
		return
	}
	dls := e.deadLetters(a, "dl", 10)
	if len(dls) != 1 || dls[0].Job.ID != id1 {
		t.Fatalf("dead letters %+v, want job %s", dls, id1)
	}
	checkUnique(e, &dls[0].Job, "k", time.Hour, "dead letter")

	n, err := a.ReplayDeadLetters(e.ctx, "dl", []string{dls[0].ID})
	var de *broker.DuplicateError
	if n != 0 || !errors.Is(err, broker.ErrDuplicate) || !errors.As(err, &de) || de.ID != id2 || de.Key != "k" {
		t.Fatalf("replay while job %s holds the key = %d, %v; want 0 and a DuplicateError naming it", id2, n, err)
	}
	if left := e.deadLetters(a, "dl", 10); len(left) != 1 || left[0].ID != dls[0].ID {
		t.Fatalf("dead letters after the refused replay: %+v, want the one kept", left)
	}

	d2 := e.fetchOne(b, "dl")
	if d2.Job.ID != id2 {
		t.Fatalf("fetched %q, want %q", d2.Job.ID, id2)
	}
	e.ack(b, d2)
	if n, err := a.ReplayDeadLetters(e.ctx, "dl", nil); n != 1 || err != nil {
		t.Fatalf("replay once the key is free = %d, %v; want 1, nil", n, err)
	}
	e.duplicateOf(b, m2, id1, "replayed")
	d = e.fetchOne(b, "dl")
	if d.Job.ID != id1 || d.Job.Failure != nil {
		t.Fatalf("replayed job %s", describe([]*broker.Delivery{d}))
	}
	checkUnique(e, &d.Job, "k", time.Hour, "replayed")
	e.ack(b, d)
	e.duplicateOf(b, m2, id1, "replayed and acked, kept for UniqueFor after its first enqueue")
	e.settled(b, "dl", 0, 0)
}

// testUniqueCrash: a worker killed while running a unique job, and a unique
// job retried and then lost with its worker: the key stays held by the
// same job through every redelivery, and is released by the ack of the
// consumer that finishes it.
func testUniqueCrash(e *env) {
	t := e.t
	c1 := e.open("c1")
	m := broker.Message{Topic: "crash", Payload: []byte("p"), UniqueKey: "k"}
	id := e.publish(c1, m)
	if d := e.fetchOne(c1, "crash"); d.Job.ID != id {
		t.Fatalf("fetched %q, want %q", d.Job.ID, id)
	}
	if err := c1.Close(); err != nil { // killed while running the job
		t.Fatalf("Close: %v", err)
	}
	c2 := e.open("c2")
	e.duplicateOf(c2, m, id, "its worker killed")
	d := e.fetchOne(c2, "crash") // after the lease
	if d.Job.ID != id || d.Job.Attempt != 2 {
		t.Fatalf("redelivered %s, want job %s attempt 2", describe([]*broker.Delivery{d}), id)
	}
	e.duplicateOf(c2, m, id, "redelivered")

	// Retried, then its next worker crashes too.
	delay := c2.Lease()
	if err := c2.Retry(e.ctx, d, delay, job.Failure{Error: "boom", Reason: job.ReasonError}); err != nil {
		t.Fatalf("Retry: %v", err)
	}
	if err := c2.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	c3 := e.open("c3")
	e.duplicateOf(c3, m, id, "waiting to retry, its worker gone")
	d = e.fetchOne(c3, "crash")
	if d.Job.ID != id || d.Job.Attempt != 3 {
		t.Fatalf("retried %s, want job %s attempt 3", describe([]*broker.Delivery{d}), id)
	}
	if err := c3.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	c4 := e.open("c4")
	e.duplicateOf(c4, m, id, "retried, its worker killed")
	d = e.fetchOne(c4, "crash")
	if d.Job.ID != id {
		t.Fatalf("redelivered %q, want %q", d.Job.ID, id)
	}
	e.ack(c4, d)
	if _, err := c4.Publish(e.ctx, m); err != nil {
		t.Fatalf("Publish after the ack: %v", err)
	}
	e.settled(c4, "crash", 1, 0)
}

// testUniquePoison: poison protection's dead-lettering releases the key.
func testUniquePoison(e *env) {
	t := e.t
	c := e.open("crashy")
	m := broker.Message{Topic: "upoison", Payload: []byte("p"), UniqueKey: "k"}
	id := e.publish(c, m)
	dlq := job.DeadLetterTopic("upoison")
	deadline := time.Now().Add(waitLimit + time.Duration(e.opts.MaxDeliveries+1)*c.Lease())
	for {
		if time.Now().After(deadline) {
			t.Fatal("the poison job was not dead-lettered")
		}
		var dl *broker.Delivery
		for _, d := range e.fetch(c, []string{"upoison", dlq}, 10) {
			if d.Job.Topic == dlq {
				dl = d
			} else {
				e.duplicateOf(c, m, id, "delivered, never settled")
			}
		}
		if dl != nil {
			if dl.Job.ID != id || dl.Job.Failure == nil || dl.Job.Failure.Reason != job.ReasonMaxDeliveries {
				t.Fatalf("dead letter %s", describe([]*broker.Delivery{dl}))
			}
			checkUnique(e, &dl.Job, "k", 0, "poison dead letter")
			e.ack(c, dl)
			break
		}
	}
	if _, err := c.Publish(e.ctx, m); err != nil {
		t.Fatalf("Publish after the poison job was dead-lettered: %v", err)
	}
}

// testUniqueBatch: PublishBatch enqueues the messages whose keys are free
// and reports the others per index, with the holder's ID.
func testUniqueBatch(e *env) {
	t := e.t
	b := e.open("c1")
	ms := []broker.Message{
		{Topic: "ub", Payload: []byte("a"), UniqueKey: "k1"},
		{Topic: "ub", Payload: []byte("b"), UniqueKey: "k1"},
		{Topic: "ub", Payload: []byte("c"), UniqueKey: "k2", Delay: time.Hour},
		{Topic: "ub", Payload: []byte("d")},
	}
	ids, err := b.PublishBatch(e.ctx, ms)
	var be *broker.BatchError
	if !errors.As(err, &be) || !errors.Is(err, broker.ErrDuplicate) {
		t.Fatalf("PublishBatch with a key twice: %v, want a *BatchError matching ErrDuplicate", err)
	}
	if len(be.Failed) != 0 || len(be.Duplicates) != 1 || be.Duplicates[0] != 1 {
		t.Fatalf("BatchError Failed %v Duplicates %v, want none and [1]", be.Failed, be.Duplicates)
	}
	if len(ids) != 4 || ids[0] == "" || ids[1] != ids[0] || ids[2] == "" || ids[3] == "" {
		t.Fatalf("IDs %q: want the holder's ID at index 1", ids)
	}
	var de *broker.DuplicateError
	if !errors.As(err, &de) || de.ID != ids[0] || de.Key != "k1" {
		t.Fatalf("BatchError.Err = %v, want the DuplicateError of index 1", be.Err)
	}

	ids2, err := b.PublishBatch(e.ctx, []broker.Message{
		{Topic: "ub", Payload: []byte("e")},
		{Topic: "ub", Payload: []byte("f"), UniqueKey: "k2"},
	})
	if !errors.As(err, &be) || len(be.Duplicates) != 1 || be.Duplicates[0] != 1 || len(be.Failed) != 0 {
		t.Fatalf("second batch: %v, want index 1 a duplicate", err)
	}
	if len(ids2) != 2 || ids2[0] == "" || ids2[1] != ids[2] {
		t.Fatalf("second batch IDs %q, want the delayed holder %q at index 1", ids2, ids[2])
	}
	got := payloads(e.fetchN(b, []string{"ub"}, 3, 10))
	if want := []string{"a", "d", "e"}; !equalStrings(got, want) {
		t.Fatalf("fetched %q, want %q: each key enqueued once", got, want)
	}
}

// testUniqueInvalid: UniqueFor needs a key and a bound.
func testUniqueInvalid(e *env) {
	b := e.open("c1")
	for _, m := range []broker.Message{
		{Topic: "ui", UniqueFor: time.Minute},
		{Topic: "ui", UniqueKey: "k", UniqueFor: -time.Second},
		{Topic: "ui", UniqueKey: "k", UniqueFor: broker.MaxUniqueFor + time.Hour},
	} {
		if _, err := b.Publish(e.ctx, m); !errors.Is(err, broker.ErrInvalidMessage) {
			e.t.Errorf("Publish(key %q, UniqueFor %v) = %v, want ErrInvalidMessage", m.UniqueKey, m.UniqueFor, err)
		}
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// testUniqueCancel: cancelling a queued or delayed unique job dead-letters
// it and releases its key; a running one keeps its key until the outcome
// its worker settles.
func testUniqueCancel(e *env) {
	t := e.t
	b := e.open("c1")
	c := e.canceller(b)
	queued := broker.Message{Topic: "ucancel", Payload: []byte("q"), UniqueKey: "q"}
	delayed := broker.Message{Topic: "ucancel", Payload: []byte("d"), UniqueKey: "d", Delay: time.Hour}
	running := broker.Message{Topic: "ucancel", Payload: []byte("r"), UniqueKey: "r"}
	rid := e.publish(b, running)
	d := e.fetchOne(b, "ucancel")
	qid, did := e.publish(b, queued), e.publish(b, delayed)

	e.cancel(c, "ucancel", qid, broker.CancelledQueued)
	e.cancel(c, "ucancel", did, broker.CancelledDelayed)
	e.cancel(c, "ucancel", rid, broker.CancelRequested)
	e.duplicateOf(b, running, rid, "running, cancel requested")
	for _, m := range []broker.Message{queued, delayed} {
		if _, err := b.Publish(e.ctx, m); err != nil {
			t.Fatalf("Publish(key %q) after its job was cancelled: %v", m.UniqueKey, err)
		}
	}
	if err := b.DeadLetter(e.ctx, d, broker.CancelFailure("ucancel", broker.CancelRequested, time.Now())); err != nil {
		t.Fatalf("DeadLetter of the cancelled running job: %v", err)
	}
	if _, err := b.Publish(e.ctx, running); err != nil {
		t.Fatalf("Publish(key %q) after the running job was dead-lettered cancelled: %v", running.UniqueKey, err)
	}
}
