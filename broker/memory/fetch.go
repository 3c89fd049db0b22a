package memory

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/job"
)

// errBadFetch is returned by Fetch for no topics or a max below 1.
var errBadFetch = errors.New("conveyor: memory: Fetch needs at least one topic and max > 0")

// Fetch returns up to max ready jobs of topics, leased to b's consumer. When
// none is ready it waits up to Options.FetchWait for one, and returns an
// empty batch and a nil error if none came. Fetch returns ctx.Err() when ctx
// ends and [broker.ErrClosed] when b closes while it waits. Jobs of one topic
// come oldest first (redeliveries before unread jobs); when several topics
// have jobs, the topic looked at first rotates between calls. Paused topics
// (see [Broker.Pause]) are skipped.
//
// Each delivery has its own Headers map and Failure; its Payload shares the
// stored job's bytes and must not be modified.
func (b *Broker) Fetch(ctx context.Context, topics []string, max int) ([]*broker.Delivery, error) {
	return b.fetch(ctx, topics, max, func(now time.Time) []*broker.Delivery {
		return b.st.take(b, topics, max, now)
	})
}

// fetch is Fetch with take choosing the jobs (under st.mu).
func (b *Broker) fetch(ctx context.Context, topics []string, max int, take func(now time.Time) []*broker.Delivery) ([]*broker.Delivery, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(topics) == 0 || max <= 0 {
		return nil, errBadFetch
	}
	st := b.st
	st.mu.Lock()
	if b.closedLocked() {
		st.mu.Unlock()
		return nil, broker.ErrClosed
	}
	now := st.now()
	st.advance(now)
	ds := take(now)
	if len(ds) > 0 || st.fetchWait < 0 {
		st.flush(now)
		st.mu.Unlock()
		return ds, nil
	}
	w := st.pool.Get().(*waiter)
	w.topics, w.max = topics, max
	st.waiters.pushBack(w)
	st.flush(now)
	st.arm(now)
	st.mu.Unlock()

	w.timer.Reset(st.fetchWait)
	defer st.release(w)
	for {
		select {
		case <-w.ch:
			st.mu.Lock()
			w.signalled = false
			if b.closedLocked() {
				st.removeWaiter(w, now)
				st.mu.Unlock()
				return nil, broker.ErrClosed
			}
			now = st.now()
			st.advance(now)
			if ds = take(now); len(ds) > 0 {
				st.removeWaiter(w, now)
				st.mu.Unlock()
				return ds, nil
			}
			st.flush(now)
			st.mu.Unlock()
		case <-w.timer.C:
			st.mu.Lock()
			defer st.mu.Unlock()
			now = st.now()
			if b.closedLocked() {
				st.removeWaiter(w, now)
				return nil, broker.ErrClosed
			}
			st.advance(now)
			ds = take(now)
			st.removeWaiter(w, now)
			return ds, nil
		case <-ctx.Done():
			st.mu.Lock()
			st.removeWaiter(w, st.now())
			st.mu.Unlock()
			return nil, ctx.Err()
		case <-b.done:
			st.mu.Lock()
			st.removeWaiter(w, st.now())
			st.mu.Unlock()
			return nil, broker.ErrClosed
		case <-st.done:
			st.mu.Lock()
			st.removeWaiter(w, st.now())
			st.mu.Unlock()
			return nil, broker.ErrClosed
		}
	}
}

// advance promotes due delayed jobs and takes back expired leases.
func (st *state) advance(now time.Time) {
	tick := st.tick(now)
	st.dropKept(tick)
	for len(st.delayed) > 0 && st.delayed[0].at <= tick {
		e := st.delayed.remove(0)
		e.topic.addDelayed(e, -1)
		st.makeReady(e)
	}
	for l := st.leases.head; l != nil && l.e.at <= tick; l = st.leases.head {
		e := l.e
		st.unlease(l)
		// Every delivery of e so far ended with no outcome.
		if e.deliveries() >= st.poisonLimit {
			f := job.Failure{
				Error:  fmt.Sprintf("conveyor: delivered %d times with no outcome: its worker crashed or lost the lease each time", e.deliveries()),
				Reason: job.ReasonMaxDeliveries,
				At:     now,
			}
			st.deadLetter(e, f, e.attempt(), now)
			continue
		}
		e.state = stReady
		e.topic.pushReady(e, true)
		st.touch(e.topic)
	}
}

// take leases up to max ready jobs of topics to b's consumer. It goes round
// the topics from the one after the topic served last, giving each topic
// that has ready jobs an equal part of what is left (at least one), until
// max jobs are taken or none is ready: every topic with a backlog is served
// in turn, and one long backlog does not take every job of a Fetch while
// others wait.
func (st *state) take(b *Broker, topics []string, max int, now time.Time) []*broker.Delivery {
	avail, live := 0, 0
	for _, name := range topics {
		if t := st.topics[name]; t.has() {
			avail += t.ready
			live++
		}
	}
	if avail == 0 {
		return nil
	}
	n := min(avail, max)
	ds := make([]broker.Delivery, n)
	ls := make([]lease, n)
	out := make([]*broker.Delivery, 0, n)
	until := st.tick(now) + int64(st.lease)
	first := int(st.rr % uint32(len(topics)))
	for len(out) < n {
		share := 1
		if live > 0 && (n-len(out))/live > 1 {
			share = (n - len(out)) / live
		}
		live = 0
		for k := 0; k < len(topics) && len(out) < n; k++ {
			i := (first + k) % len(topics)
			t := st.topics[topics[i]]
			if !t.has() {
				continue
			}
			for c := 0; c < share && len(out) < n && t.ready > 0; c++ {
				out = append(out, st.give(b, t, &ds[len(out)], &ls[len(out)], until))
			}
			st.rr = uint32(i + 1)
			st.served(b, t)
			if t.ready > 0 {
				live++
			}
		}
	}
	b.c.lastSeen = now
	st.name(out)
	return out
}

// has reports whether t exists, is not paused and has ready jobs.
func (t *topic) has() bool {
	return t != nil && !t.paused && t.ready > 0
}

// give leases the next ready job of t to b's consumer until the tick
// until, recording the lease in l and filling d but for its receipt (and
// the job's ID when it is the receipt), which st.name sets.
func (st *state) give(b *Broker, t *topic, d *broker.Delivery, l *lease, until int64) *broker.Delivery {
	e := t.popReady()
	e.n++
	e.state = stLeased
	e.at = until
	l.e, l.holder = e, b.c
	st.leases.pushBack(l)
	st.leased[e.seq] = l
	t.addPending(e, 1)
	d.Job = st.jobOf(e)
	d.Job.Attempt = e.attempt()
	detach(&d.Job)
	t.lastDelivered = e.seq
	st.giving = append(st.giving, e)
	return d
}

// name sets the receipts of ds, the deliveries given since the last call,
// in one allocation, and the IDs that are receipts.
func (st *state) name(ds []*broker.Delivery) {
	buf := st.names[:0]
	for _, e := range st.giving {
		buf = st.appendReceipt(buf, e.seq)
	}
	s := string(buf)
	start := 0
	for i, e := range st.giving {
		end := start + len(st.prefix) + receiptDigits(e.seq)
		d := ds[i]
		d.Receipt = s[start:end]
		if d.Job.ID == "" {
			d.Job.ID = d.Receipt
		}
		start = end
		st.giving[i] = nil
	}
	st.giving = st.giving[:0]
	st.names = buf[:0]
}

// receiptDigits returns the number of base-36 digits of seq.
func receiptDigits(seq uint64) int {
	n := 1
	for seq >= 36 {
		seq /= 36
		n++
	}
	return n
}

// jobOf returns e's job, with ID "" when it is e's receipt.
func (st *state) jobOf(e *entry) job.Job {
	j := job.Job{
		Topic:      e.topic.name,
		Payload:    e.payload,
		Attempt:    e.recorded(),
		EnqueuedAt: st.epoch.Add(time.Duration(e.enq)),
	}
	if x := e.x; x != nil {
		j.ID = x.id
		j.Headers = x.headers
		j.MaxAttempts, j.Timeout = x.maxAttempts, x.timeout
		j.UniqueKey, j.UniqueFor = x.uniqueKey, x.uniqueFor
		j.Key = x.key
		j.Failure = x.failure
	}
	return j
}

// fullJob is jobOf with the ID always set.
func (st *state) fullJob(e *entry) job.Job {
	j := st.jobOf(e)
	if j.ID == "" {
		j.ID = st.receiptOf(e.seq)
	}
	return j
}

// served records that b's consumer took jobs of t, and lets another waiter
// have t's leftovers.
func (st *state) served(b *Broker, t *topic) {
	if !hasReader(t.readers, b.c) {
		t.readers = append(t.readers, b.c)
	}
	if t.ready > 0 {
		st.touch(t)
	}
}

// detach gives a delivered or listed job its own headers and failure, as a
// job decoded from Redis has, so that a handler writing to them cannot race
// with another delivery of the same job. The payload stays shared: handlers
// only read it.
func detach(j *job.Job) {
	if j.Headers != nil {
		j.Headers = maps.Clone(j.Headers)
	}
	if j.Failure != nil {
		f := *j.Failure
		j.Failure = &f
	}
}

func hasReader(rs []*consumer, c *consumer) bool {
	for _, r := range rs {
		if r == c {
			return true
		}
	}
	return false
}
