package redis

import (
	"context"
	"time"
)

// Delayed jobs are promoted to their stream when they are due, not only at
// ClaimInterval: the broker remembers, per topic, the due time of the
// earliest member of the delayed set (dueAt). It learns it from every
// promotion (the promote script returns the set's new head) and lowers it
// whenever this broker itself adds a delayed member (a delayed Publish, a
// Retry or Snooze with a delay). Fetch promotes a topic whose dueAt has
// passed, and a Fetch that waits for new entries wakes at the earliest
// dueAt of its topics to promote (see promoteWhenDue): the promotion's XADD
// ends the blocking read at once. A delayed job added by another process is
// learned at the next ClaimInterval promotion, so it starts at most about
// ClaimInterval late; one this process added starts within a few
// milliseconds of its due time when a worker is free.

// dueAt is what the broker knows of a topic's delayed set.
type dueAt struct {
	at    int64 // unix ms of the earliest member
	noted bool  // lowered by noteDue since the last promotion started
}

// noteDue records that a member due at ms (unix ms) was added to topic's
// delayed set.
func (b *Broker) noteDue(topic string, ms int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	d, ok := b.due[topic]
	if !ok || ms < d.at {
		b.due[topic] = dueAt{at: ms, noted: true}
		if b.dueWake != nil {
			// Waiting reads re-arm their promotion for the earlier time.
			close(b.dueWake)
			b.dueWake = nil
		}
		return
	}
	d.noted = true
	b.due[topic] = d
}

// promoting marks the start of a promotion of topics: a noteDue from now
// on is kept even if the promotion's reply says the set is later or empty.
func (b *Broker) promoting(ks []keys) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, k := range ks {
		if d, ok := b.due[k.topic]; ok {
			d.noted = false
			b.due[k.topic] = d
		}
	}
}

// promoted records the head of topic's delayed set that a promotion
// returned (-1: empty).
func (b *Broker) promoted(topic string, head int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	d, ok := b.due[topic]
	if ok && d.noted {
		// A member was added while the script ran: it may be missing
		// from head.
		if head >= 0 && head < d.at {
			d.at = head
		}
		b.due[topic] = d
		return
	}
	if head < 0 {
		delete(b.due, topic)
		return
	}
	b.due[topic] = dueAt{at: head}
}

// nextDue returns the earliest known due time (unix ms) among ks, and a
// channel closed when noteDue next lowers the due time of a topic.
func (b *Broker) nextDue(ks []keys) (int64, bool, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dueWake == nil {
		b.dueWake = make(chan struct{})
	}
	var at int64
	found := false
	for _, k := range ks {
		if d, ok := b.due[k.topic]; ok && (!found || d.at < at) {
			at, found = d.at, true
		}
	}
	return at, found, b.dueWake
}

// dueNow returns the topics of ks whose known due time is at or before now
// (unix ms).
func (b *Broker) dueNow(ks []keys, now int64) []keys {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []keys
	for _, k := range ks {
		if d, ok := b.due[k.topic]; ok && d.at <= now {
			out = append(out, k)
		}
	}
	return out
}

// promoteWhenDue starts a goroutine that, while a read of ks waits (until
// the real time until), promotes each topic of ks when its known due time
// comes, also for delayed jobs this broker adds during the wait, and
// signals woke after each promotion. A single Redis ends a blocking
// XREADGROUP as soon as the promotion adds entries; a polling reader
// (Cluster) selects on woke. stop ends the goroutine and waits for it.
func (b *Broker) promoteWhenDue(ctx context.Context, ks []keys, until time.Time) (woke <-chan struct{}, stop func()) {
	ch := make(chan struct{}, 1)
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			var t *time.Timer
			var fire <-chan time.Time
			at, ok, lowered := b.nextDue(ks)
			if wait := time.UnixMilli(at).Sub(b.o.Now()); ok && wait < time.Until(until) {
				t = time.NewTimer(max(wait, 0))
				fire = t.C
			}
			select {
			case <-quit:
				if t != nil {
					t.Stop()
				}
				return
			case <-lowered:
				// A delayed job was added meanwhile: it may be due sooner.
				if t != nil {
					t.Stop()
				}
				continue
			case <-fire:
			}
			if ctx.Err() != nil {
				return
			}
			due := b.dueNow(ks, b.o.Now().UnixMilli())
			if len(due) == 0 {
				continue // the clock has not reached at yet (an injected clock)
			}
			errs := b.promote(ctx, due)
			select {
			case ch <- struct{}{}:
			default:
			}
			if len(errs) > 0 {
				return
			}
		}
	}()
	return ch, func() {
		close(quit)
		<-done
	}
}
