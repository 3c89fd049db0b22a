package memory

import (
	"context"
	"fmt"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/job"
)

// Ack settles ds as done under one lock. A delivery that is no longer leased
// (settled before, or redelivered after its lease expired and settled
// elsewhere) is ignored, as XACK ignores unknown IDs. The unique key of an
// acked job is released, or kept until UniqueFor after its EnqueuedAt. The
// result of a delivery with one (Delivery.Result) is kept for
// Options.ResultRetention (see [Broker.JobState]).
func (b *Broker) Ack(ctx context.Context, ds ...*broker.Delivery) error {
	if err := b.lock(ctx); err != nil {
		return err
	}
	st := b.st
	defer st.mu.Unlock()
	var now time.Time
	for _, d := range ds {
		if d == nil {
			continue
		}
		if l := st.leasedEntry(d.Receipt); l != nil {
			e := l.e
			if now.IsZero() && (d.Result != nil || e.x != nil) {
				now = st.now()
			}
			if d.Result != nil {
				st.storeResult(e, d, now)
			}
			st.jobEnded(e, broker.MemberSucceeded, d.Result, "", now) // see batch.go
			st.unlease(l)
			if e.uniqueKey() != "" {
				st.releaseClaim(e, true, now)
			}
			e.drop() // the entry may share a batch allocation
		}
	}
	if !now.IsZero() {
		st.flush(now) // a batch's callback may have been enqueued
	}
	return nil
}

// Retry re-enqueues d's job after delay as attempt d.Job.Attempt+1 with f
// recorded (Origin defaults to the topic, At to now). It returns an error
// wrapping [broker.ErrNotFound] when d is no longer leased.
func (b *Broker) Retry(ctx context.Context, d *broker.Delivery, delay time.Duration, f job.Failure) error {
	return b.requeue(ctx, d, delay, &f)
}

// Snooze re-enqueues d's job after delay keeping its attempt. It returns an
// error wrapping [broker.ErrNotFound] when d is no longer leased.
func (b *Broker) Snooze(ctx context.Context, d *broker.Delivery, delay time.Duration) error {
	return b.requeue(ctx, d, delay, nil)
}

func (b *Broker) requeue(ctx context.Context, d *broker.Delivery, delay time.Duration, f *job.Failure) error {
	if err := b.lock(ctx); err != nil {
		return err
	}
	st := b.st
	defer st.mu.Unlock()
	e, err := st.settle(d, b.c)
	if err != nil {
		return err
	}
	now := st.now()
	attempt := e.attempt()
	x := st.extra(e) // keeps the ID before the receipt changes
	x.attempt = attempt
	if f != nil {
		x.attempt = broker.AddAttempts(attempt, 1)
		fc := *f
		if fc.Origin == "" {
			fc.Origin = e.topic.name
		}
		if fc.At.IsZero() {
			fc.At = now
		}
		x.failure = &fc
	}
	e.n = 0
	e.cancel = false
	e.seq = st.next()
	st.enqueue(e, e.topic, now.Add(delay), now)
	st.flush(now)
	st.arm(now)
	return nil
}

// DeadLetter moves d's job to its dead-letter topic with f recorded (Origin
// defaults to the topic, At to now), keeping its ID, payload, headers,
// attempt and EnqueuedAt. It returns an error wrapping [broker.ErrNotFound]
// when d is no longer leased.
func (b *Broker) DeadLetter(ctx context.Context, d *broker.Delivery, f job.Failure) error {
	if err := b.lock(ctx); err != nil {
		return err
	}
	st := b.st
	defer st.mu.Unlock()
	e, err := st.settle(d, b.c)
	if err != nil {
		return err
	}
	now := st.now()
	st.deadLetter(e, f, e.attempt(), now)
	st.flush(now)
	return nil
}

// Extend renews for a full lease the deliveries in ds that b's consumer still
// holds. If some are no longer held by it (settled, or expired and taken
// back), it renews the others and returns an error wrapping
// [broker.ErrNotFound].
func (b *Broker) Extend(ctx context.Context, ds ...*broker.Delivery) error {
	if err := b.lock(ctx); err != nil {
		return err
	}
	st := b.st
	defer st.mu.Unlock()
	until := st.tick(st.now()) + int64(st.lease)
	lost := 0
	for _, d := range ds {
		if d == nil {
			continue
		}
		l := st.leasedEntry(d.Receipt)
		if l == nil || l.holder != b.c {
			lost++
			continue
		}
		l.e.at = until
		st.leases.moveToBack(l)
	}
	if lost > 0 {
		return fmt.Errorf("%w: %d of %d deliveries are no longer leased to %s", broker.ErrNotFound, lost, len(ds), b.c.name)
	}
	return nil
}

// settle finds the entry of d leased to c and takes it out of the lease
// list. An entry leased to another consumer (which took it after c's lease
// expired, and runs the job now) is not c's to settle.
func (st *state) settle(d *broker.Delivery, c *consumer) (*entry, error) {
	if d == nil {
		return nil, fmt.Errorf("%w: nil delivery", broker.ErrNotFound)
	}
	l := st.leasedEntry(d.Receipt)
	if l == nil {
		return nil, fmt.Errorf("%w: delivery %q is not leased (settled, or its lease expired)", broker.ErrNotFound, d.Receipt)
	}
	if l.holder != c {
		return nil, fmt.Errorf("%w: delivery %q is now leased to consumer %s, which took it after the lease expired and decides its outcome", broker.ErrNotFound, d.Receipt, l.holder.name)
	}
	e := l.e
	st.unlease(l)
	return e, nil
}

// leasedEntry returns the lease of the entry with receipt, or nil. (A
// receipt parses only in its own spelling, so the sequence number names
// it.)
func (st *state) leasedEntry(receipt string) *lease {
	seq, ok := st.seqOf(receipt)
	if !ok {
		return nil
	}
	return st.leased[seq]
}

// unlease ends lease l. Its entry is then in no queue.
func (st *state) unlease(l *lease) {
	e := l.e
	delete(st.leased, e.seq)
	st.leases.remove(l)
	e.topic.addPending(e, -1)
	e.state = stGone
	l.e, l.holder = nil, nil // l may share a fetch's allocation
}

// deadLetter stores e's job in its topic's dead-letter topic with f, as
// attempt. e must already be out of every queue.
func (st *state) deadLetter(e *entry, f job.Failure, attempt int, now time.Time) {
	if f.Origin == "" {
		f.Origin = e.topic.name
	}
	if f.At.IsZero() {
		f.At = now
	}
	st.jobEnded(e, endState(&f), nil, f.Error, now) // see batch.go
	st.releaseClaim(e, false, now)
	x := *st.extra(e)
	x.attempt = attempt
	x.failure = &f
	// A dead letter may live long: do not pin the payload buffer of the
	// batch it was published in.
	d := &entry{payload: cloneBytes(e.payload), x: &x, enq: e.enq, part: e.part, seq: st.next()} // its partition's dead letter
	e.drop()
	st.enqueue(d, st.topic(e.topic.dlq), now, now)
}
