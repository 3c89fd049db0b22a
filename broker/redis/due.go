package redis

import (
	"context"
	"slices"
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
	noted bool  // noteDue was called since the last promotion started
	since int64 // the earliest due time noted since then (when noted)
}

// noteDue records that a member due at ms (unix ms) was added to topic's
// delayed set, and tells the reads waiting on topic (see promoteWhenDue).
func (b *Broker) noteDue(topic string, ms int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	d, ok := b.due[topic]
	if !d.noted || ms < d.since {
		d.since = ms
	}
	d.noted = true
	if ok && ms >= d.at {
		b.due[topic] = d
		return
	}
	d.at = ms
	b.due[topic] = d
	for w := range b.waits {
		if !slices.ContainsFunc(w.ks, func(k keys) bool { return k.id == topic }) {
			continue
		}
		if w.done != nil {
			select {
			case w.lowered <- struct{}{}:
			default:
			}
		} else if time.UnixMilli(ms).Sub(b.o.Now()) < time.Until(w.until) {
			b.startPromoter(w)
		}
	}
}

// promoting marks the start of a promotion of topics: a noteDue from now
// on is kept even if the promotion's reply says the set is later or empty.
func (b *Broker) promoting(ks []keys) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, k := range ks {
		if d, ok := b.due[k.id]; ok {
			d.noted = false
			b.due[k.id] = d
		}
	}
}

// promoted records the head of topic's delayed set that a promotion
// returned (-1: empty). A member noted while the script ran may be missing
// from head: the earlier of head and the due times noted since is kept.
func (b *Broker) promoted(topic string, head int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	d := b.due[topic]
	switch {
	case d.noted && (head < 0 || d.since < head):
		b.due[topic] = dueAt{at: d.since, noted: true, since: d.since}
	case head < 0:
		delete(b.due, topic)
	default:
		b.due[topic] = dueAt{at: head, noted: d.noted, since: d.since}
	}
}

// nextDue returns the earliest known due time (unix ms) among ks.
func (b *Broker) nextDue(ks []keys) (int64, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.nextDueLocked(ks)
}

func (b *Broker) nextDueLocked(ks []keys) (int64, bool) {
	var at int64
	found := false
	for _, k := range ks {
		if d, ok := b.due[k.id]; ok && (!found || d.at < at) {
			at, found = d.at, true
		}
	}
	return at, found
}

// dueNow returns the topics of ks whose known due time is at or before now
// (unix ms).
func (b *Broker) dueNow(ks []keys, now int64) []keys {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []keys
	for _, k := range ks {
		if d, ok := b.due[k.id]; ok && d.at <= now {
			out = append(out, k)
		}
	}
	return out
}

// waiting is a read of ks waiting for new entries until the real time
// until, registered in Broker.waits so that its delayed jobs are promoted
// when due (see promoteWhenDue).
type waiting struct {
	ctx   context.Context
	ks    []keys
	until time.Time
	woke  chan struct{} // signalled after each promotion; nil when not asked for

	// Guarded by Broker.mu.
	lowered chan struct{} // a due time of ks was lowered
	quit    chan struct{} // closed by stop
	done    chan struct{} // closed when the promoter ends; nil while none runs
}

// promoteWhenDue registers a read of ks that waits until the real time
// until. While it waits, each topic of ks is promoted when its known due
// time comes, including delayed jobs this broker adds during the wait: a
// goroutine is started for that when a due time falls before until, at
// once or when noteDue learns of one. A single Redis ends a blocking
// XREADGROUP as soon as the promotion adds entries; a polling reader
// (Cluster) asks for a signal on woke after each promotion. stop
// unregisters the read and ends the goroutine, waiting for it.
func (b *Broker) promoteWhenDue(ctx context.Context, ks []keys, until time.Time, wake bool) (woke <-chan struct{}, stop func()) {
	w := &waiting{ctx: ctx, ks: ks, until: until}
	if wake {
		w.woke = make(chan struct{}, 1)
	}
	b.mu.Lock()
	b.waits[w] = struct{}{}
	if at, ok := b.nextDueLocked(ks); ok && time.UnixMilli(at).Sub(b.o.Now()) < time.Until(until) {
		b.startPromoter(w)
	}
	b.mu.Unlock()
	return w.woke, func() {
		b.mu.Lock()
		delete(b.waits, w)
		done := w.done
		if done != nil {
			close(w.quit)
		}
		b.mu.Unlock()
		if done != nil {
			<-done
		}
	}
}

// startPromoter starts w's promoter. b.mu is held.
func (b *Broker) startPromoter(w *waiting) {
	w.lowered = make(chan struct{}, 1)
	w.quit = make(chan struct{})
	w.done = make(chan struct{})
	go b.promoter(w)
}

// promoter promotes the topics of w as their known due times come, until
// w stops.
func (b *Broker) promoter(w *waiting) {
	defer close(w.done)
	for {
		var t *time.Timer
		var fire <-chan time.Time
		if at, ok := b.nextDue(w.ks); ok {
			if wait := time.UnixMilli(at).Sub(b.o.Now()); wait < time.Until(w.until) {
				t = time.NewTimer(max(wait, 0))
				fire = t.C
			}
		}
		select {
		case <-w.quit:
			if t != nil {
				t.Stop()
			}
			return
		case <-w.lowered:
			// A delayed job was added meanwhile: it may be due sooner.
			if t != nil {
				t.Stop()
			}
			continue
		case <-fire:
		}
		if w.ctx.Err() != nil {
			return
		}
		due := b.dueNow(w.ks, b.o.Now().UnixMilli())
		if len(due) == 0 {
			continue // the clock has not reached at yet (an injected clock)
		}
		errs := b.promote(w.ctx, due)
		if w.woke != nil {
			select {
			case w.woke <- struct{}{}:
			default:
			}
		}
		if len(errs) > 0 {
			return
		}
	}
}
