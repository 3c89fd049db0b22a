package memory

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/job"
)

// lock checks ctx and b, and locks the state.
func (b *Broker) lock(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.st.mu.Lock()
	if b.closedLocked() {
		b.st.mu.Unlock()
		return broker.ErrClosed
	}
	return nil
}

// lockCurrent is lock, then brings the state up to its clock's now: delayed
// jobs that are due become ready, expired leases are taken back, and
// waiting fetches are woken. It returns the locked state, which the caller
// unlocks, and now.
func (b *Broker) lockCurrent(ctx context.Context) (*state, time.Time, error) {
	if err := b.lock(ctx); err != nil {
		return nil, time.Time{}, err
	}
	st := b.st
	now := st.now()
	st.advance(now)
	st.flush(now)
	return st, now, nil
}

// Topics lists the topics that hold or held jobs or dead letters, sorted; a
// dead-letter topic T.dlq is listed as T.
func (b *Broker) Topics(ctx context.Context) ([]string, error) {
	if err := b.lock(ctx); err != nil {
		return nil, err
	}
	defer b.st.mu.Unlock()
	seen := make(map[string]bool, len(b.st.topics))
	for name := range b.st.topics {
		seen[strings.TrimSuffix(name, job.DeadLetterSuffix)] = true
	}
	names := make([]string, 0, len(seen))
	for name := range seen {
		names = append(names, name)
	}
	slices.Sort(names)
	return names, nil
}

// inspected returns topic name and its dead-letter topic for inspection:
// an empty topic when only dead letters were seen (dl may be nil), and an
// error wrapping broker.ErrNotFound when neither was ever used. st.mu is
// held.
func (st *state) inspected(name string) (t, dl *topic, err error) {
	t, dl = st.topics[name], st.topics[job.DeadLetterTopic(name)]
	if t == nil && dl == nil {
		return nil, nil, fmt.Errorf("%w: topic %q", broker.ErrNotFound, name)
	}
	if t == nil {
		t = newTopic(name)
	}
	return t, dl, nil
}

// Inspect describes topic: ready (Lag) plus leased (Pending) jobs make its
// Length; Delayed and DeadLetters count its delayed set and dead-letter
// topic. It returns [broker.ErrNotFound] for a topic never used.
func (b *Broker) Inspect(ctx context.Context, name string) (*broker.TopicInfo, error) {
	st, now, err := b.lockCurrent(ctx)
	if err != nil {
		return nil, err
	}
	defer st.mu.Unlock()
	t, dl, err := st.inspected(name)
	if err != nil {
		return nil, err
	}
	info := &broker.TopicInfo{
		Topic:   name,
		Length:  int64(t.ready) + t.pending,
		LastID:  st.receiptOf(t.lastID),
		Pending: t.pending,
		Lag:     int64(t.ready),
		Delayed: t.delayed,
		Paused:  t.paused,
	}
	if len(t.parts) > 1 {
		info.Partitions = len(t.parts)
	}
	if dl != nil {
		info.DeadLetters = int64(dl.ready) + dl.pending + dl.delayed
	}
	g := broker.GroupInfo{
		Name:            GroupName,
		Pending:         info.Pending,
		Lag:             info.Lag,
		LastDeliveredID: st.receiptOf(t.lastDelivered),
		Consumers:       []broker.ConsumerInfo{},
	}
	held := make(map[*consumer]int64)
	for l := range st.leasedOf(t) {
		held[l.holder]++
	}
	for _, c := range t.readers {
		g.Consumers = append(g.Consumers, broker.ConsumerInfo{Name: c.name, Pending: held[c], Idle: now.Sub(c.lastSeen)})
	}
	slices.SortFunc(g.Consumers, func(a, b broker.ConsumerInfo) int { return cmp.Compare(a.Name, b.Name) })
	info.Groups = []broker.GroupInfo{g}
	return info, nil
}

// entries returns every stored entry of t (ready, leased, delayed) in
// receipt order.
func (st *state) entries(t *topic) []*entry {
	if t == nil {
		return nil
	}
	es := make([]*entry, 0, t.ready+int(t.pending+t.delayed))
	es = slices.AppendSeq(es, t.readyOf())
	for l := range st.leasedOf(t) {
		es = append(es, l.e)
	}
	es = slices.AppendSeq(es, st.delayedOf(t))
	slices.SortFunc(es, func(a, b *entry) int { return cmp.Compare(a.seq, b.seq) })
	return es
}

// remove takes es, all entries of t, out of wherever they are.
func (st *state) remove(t *topic, es []*entry) {
	compact := false
	for _, e := range es {
		switch e.state {
		case stReady:
			e.state = stGone
			compact = true
		case stLeased:
			st.unlease(st.leased[e.seq])
		case stDelayed:
			st.delayed.remove(int(e.n))
			t.addDelayed(e, -1)
			e.state = stGone
		}
	}
	if compact {
		t.compact()
	}
}

func (st *state) deadLetterOf(e *entry) broker.DeadLetter {
	dl := broker.DeadLetter{ID: st.receiptOf(e.seq), Job: st.fullJob(e)}
	detach(&dl.Job)
	return dl
}

// DeadLetters lists up to limit dead letters of topic (from topic T.dlq),
// oldest first, after the dead letter with ID after ("" for the start).
// limit <= 0 means no limit. Dead letters being processed from T.dlq (leased)
// or delayed there are listed too.
func (b *Broker) DeadLetters(ctx context.Context, topic, after string, limit int) ([]broker.DeadLetter, error) {
	if err := b.lock(ctx); err != nil {
		return nil, err
	}
	st := b.st
	defer st.mu.Unlock()
	var from uint64
	if after != "" {
		seq, ok := st.seqOf(after)
		if !ok {
			return nil, fmt.Errorf("%w: dead letter %q", broker.ErrNotFound, after)
		}
		from = seq
	}
	out := []broker.DeadLetter{}
	for _, e := range st.entries(st.topics[job.DeadLetterTopic(topic)]) {
		if e.seq <= from {
			continue
		}
		if limit > 0 && len(out) == limit {
			break
		}
		out = append(out, st.deadLetterOf(e))
	}
	return out, nil
}

// DeadLetterByID returns the dead letter of topic with id, or an error
// wrapping [broker.ErrNotFound]. It is [broker.DeadLetterAdmin]'s DeadLetter
// method, renamed because [broker.Broker] has a DeadLetter method of its own;
// [Broker.DeadLetterAdmin] returns the interface.
func (b *Broker) DeadLetterByID(ctx context.Context, topic, id string) (*broker.DeadLetter, error) {
	if err := b.lock(ctx); err != nil {
		return nil, err
	}
	st := b.st
	defer st.mu.Unlock()
	if seq, ok := st.seqOf(id); ok {
		for _, e := range st.entries(st.topics[job.DeadLetterTopic(topic)]) {
			if e.seq == seq {
				dl := st.deadLetterOf(e)
				return &dl, nil
			}
		}
	}
	return nil, fmt.Errorf("%w: dead letter %q of %q", broker.ErrNotFound, id, topic)
}

// selectEntries returns the entries of t with the given receipts, or all for nil
// ids, in receipt order.
func (st *state) selectEntries(t *topic, ids []string) []*entry {
	es := st.entries(t)
	if ids == nil {
		return es
	}
	want := make(map[uint64]bool, len(ids))
	for _, id := range ids {
		if seq, ok := st.seqOf(id); ok {
			want[seq] = true
		}
	}
	return slices.DeleteFunc(es, func(e *entry) bool { return !want[e.seq] })
}

// ReplayDeadLetters moves the dead letters of topic with ids (nil: all, as of
// the call) back to topic, oldest first, with Attempt 1 and no Failure; ID,
// payload, headers and EnqueuedAt are kept. It runs under one lock, so it is
// atomic. Unknown ids are skipped; it returns how many moved. A replayed job
// with a unique key takes the key again; a dead letter whose key another
// job holds stays where it is, and the error (joined over such dead letters)
// matches broker.ErrDuplicate and holds a *broker.DuplicateError naming the
// holder.
func (b *Broker) ReplayDeadLetters(ctx context.Context, topic string, ids []string) (int, error) {
	if topic == "" {
		return 0, fmt.Errorf("%w: empty topic", broker.ErrInvalidMessage)
	}
	if err := b.lock(ctx); err != nil {
		return 0, err
	}
	st := b.st
	defer st.mu.Unlock()
	dl := st.topics[job.DeadLetterTopic(topic)]
	es := st.selectEntries(dl, ids)
	if len(es) == 0 {
		return 0, nil
	}
	now := st.now()
	var dups []error
	es = slices.DeleteFunc(es, func(e *entry) bool {
		key := e.uniqueKey()
		if key == "" {
			return false
		}
		if id := st.holder(topic, key, now); id != "" {
			dups = append(dups, fmt.Errorf("dead letter %s of %q not replayed: %w", st.receiptOf(e.seq), topic,
				&broker.DuplicateError{Topic: topic, Key: key, ID: id}))
			return true
		}
		st.takeClaim(topic, key, e.x.id)
		return false
	})
	st.remove(dl, es)
	t := st.topic(topic)
	for _, e := range es {
		x := st.extra(e) // a dead letter has one already
		x.attempt = 0
		x.failure = nil
		e.n = 0
		e.seq = st.next()
		st.enqueue(e, t, now, now)
	}
	st.flush(now)
	return len(es), errors.Join(dups...)
}

// PurgeDeadLetters deletes the dead letters of topic with ids (nil: all) and
// returns how many it deleted.
func (b *Broker) PurgeDeadLetters(ctx context.Context, topic string, ids []string) (int, error) {
	if err := b.lock(ctx); err != nil {
		return 0, err
	}
	st := b.st
	defer st.mu.Unlock()
	dl := st.topics[job.DeadLetterTopic(topic)]
	es := st.selectEntries(dl, ids)
	st.remove(dl, es)
	for _, e := range es {
		e.drop()
	}
	return len(es), nil
}

var errTrimOptions = errors.New("conveyor: memory: set exactly one of TrimOptions.MaxLen and TrimOptions.OlderThan, positive")

var _ broker.TrimDryRunner = (*Broker)(nil)

// Trim removes the oldest unread jobs of topic: beyond the newest
// opts.MaxLen jobs (unread plus pending), or those that became ready more
// than opts.OlderThan ago. Like XTRIM MINID below the oldest pending entry,
// it never removes a pending job (leased, or taken back after an expired
// lease and not yet redelivered) nor any job newer than one. Delayed jobs and
// dead letters of topic are not touched (trim topic's dead-letter topic for
// those). It returns how many jobs it removed; [Broker.TrimDryRun] says how
// many it would remove.
//
// Settled jobs are removed at once, so every job a topic holds is unread or
// pending: without opts.IncludeUnread, Trim removes nothing.
func (b *Broker) Trim(ctx context.Context, topic string, opts broker.TrimOptions) (int64, error) {
	return b.trim(ctx, topic, opts, false)
}

// TrimDryRun returns how many jobs [Broker.Trim] with opts would remove from
// topic now, removing nothing. It selects them exactly as Trim does, under
// the same lock, so the count is exact at that moment (jobs published,
// fetched or settled afterwards change what a later Trim removes).
func (b *Broker) TrimDryRun(ctx context.Context, topic string, opts broker.TrimOptions) (int64, error) {
	return b.trim(ctx, topic, opts, true)
}

// trim counts the jobs of topic that a trim with opts removes and, unless
// dry, removes them.
func (b *Broker) trim(ctx context.Context, topic string, opts broker.TrimOptions, dry bool) (int64, error) {
	if (opts.MaxLen > 0) == (opts.OlderThan > 0) || opts.MaxLen < 0 || opts.OlderThan < 0 {
		return 0, errTrimOptions
	}
	st, now, err := b.lockCurrent(ctx)
	if err != nil {
		return 0, err
	}
	defer st.mu.Unlock()
	t := st.topics[topic]
	if t == nil {
		return 0, nil
	}
	es := st.trimmable(t, opts, now)
	if dry || len(es) == 0 {
		return int64(len(es)), nil
	}
	for _, e := range es {
		e.state = stGone
		st.releaseClaim(e, false, now)
		e.drop()
	}
	t.compact()
	return int64(len(es)), nil
}

// trimmable returns the ready jobs of t that a trim with opts removes at
// now, oldest first: the selection of [Broker.Trim], which removes exactly
// those. Of a topic of several partitions it takes the oldest unread jobs of
// all partitions together, bounded by the oldest pending job of any.
func (st *state) trimmable(t *topic, opts broker.TrimOptions, now time.Time) []*entry {
	if !opts.IncludeUnread {
		return nil
	}
	// The oldest pending position bounds the trim.
	var bound uint64
	for l := range st.leasedOf(t) {
		if bound == 0 || l.e.pos < bound {
			bound = l.e.pos
		}
	}
	// One queue is in position order after the redeliveries at its front.
	unread := t.readyOf()
	if len(t.parts) > 1 {
		var es []*entry
		for e := range t.readyOf() {
			if e.deliveries() == 0 {
				es = append(es, e)
			} else if bound == 0 || e.pos < bound {
				bound = e.pos // taken back after its lease: pending
			}
		}
		slices.SortFunc(es, func(a, b *entry) int { return cmp.Compare(a.pos, b.pos) })
		unread = slices.Values(es)
	}
	excess := int64(t.ready) + t.pending - opts.MaxLen
	cutoff := st.tick(now) - int64(opts.OlderThan)
	var out []*entry
	for e := range unread {
		if e.deliveries() > 0 || (bound != 0 && e.pos > bound) {
			break
		}
		if opts.MaxLen > 0 && int64(len(out)) >= excess {
			break
		}
		if opts.OlderThan > 0 && e.at >= cutoff {
			break
		}
		out = append(out, e)
	}
	return out
}

var (
	_ broker.PendingLister  = (*Broker)(nil)
	_ broker.DelayedLister  = (*Broker)(nil)
	_ broker.DelayedDeleter = (*Broker)(nil)
)

// PendingEntries lists up to limit (default [broker.DefaultListLimit]) jobs
// of topic leased to a consumer, oldest entry first. A lease that has
// expired is taken back first, so its job is ready again and not listed.
// Idle is the time since the job was delivered or its lease last extended.
func (b *Broker) PendingEntries(ctx context.Context, topic string, limit int) ([]broker.PendingEntry, error) {
	st, now, err := b.lockCurrent(ctx)
	if err != nil {
		return nil, err
	}
	defer st.mu.Unlock()
	ls := firstOf(st.leasedOf(st.topics[topic]), limit, func(a, b *lease) int { return cmp.Compare(a.e.seq, b.e.seq) })
	tick := st.tick(now)
	out := make([]broker.PendingEntry, len(ls))
	for i, l := range ls {
		e := l.e
		// A lease lasts st.lease from its last delivery or extension.
		idle := max(st.lease-time.Duration(e.at-tick), 0)
		out[i] = broker.PendingEntry{ID: st.receiptOf(e.seq), Consumer: l.holder.name, Idle: idle, Deliveries: int64(e.deliveries())}
	}
	return out, nil
}

// DelayedJobs lists up to limit (default [broker.DefaultListLimit]) delayed
// jobs of topic, soonest due first (jobs due at the same instant in the
// order they were enqueued). Their Snooze is always nil: the memory broker
// records no snooze causes.
func (b *Broker) DelayedJobs(ctx context.Context, topic string, limit int) ([]broker.DelayedJob, error) {
	st, _, err := b.lockCurrent(ctx)
	if err != nil {
		return nil, err
	}
	defer st.mu.Unlock()
	es := firstOf(st.delayedOf(st.topics[topic]), limit, func(a, b *entry) int {
		return cmp.Or(cmp.Compare(a.at, b.at), cmp.Compare(a.seq, b.seq))
	})
	out := make([]broker.DelayedJob, len(es))
	for i, e := range es {
		out[i] = broker.DelayedJob{Job: st.fullJob(e), Due: st.epoch.Add(time.Duration(e.at)).Round(0)}
		detach(&out[i].Job)
	}
	return out, nil
}

// DeleteDelayed removes the delayed job of topic with job ID id, or returns
// an error wrapping [broker.ErrNotFound].
func (b *Broker) DeleteDelayed(ctx context.Context, topic, id string) error {
	st, _, err := b.lockCurrent(ctx)
	if err != nil {
		return err
	}
	defer st.mu.Unlock()
	t := st.topics[topic]
	for e := range st.delayedOf(t) {
		if st.idOf(e) == id {
			st.remove(t, []*entry{e})
			e.drop()
			return nil
		}
	}
	return fmt.Errorf("%w: delayed job %q of %q", broker.ErrNotFound, id, topic)
}

// firstOf returns the first limit (default [broker.DefaultListLimit]) of the
// entries es yields, in the order of compare.
func firstOf[T any](es iter.Seq[T], limit int, compare func(a, b T) int) []T {
	if limit <= 0 {
		limit = broker.DefaultListLimit
	}
	sorted := slices.SortedFunc(es, compare)
	return sorted[:min(len(sorted), limit)]
}

// leasedOf yields the leases of t's entries, soonest expiry first.
func (st *state) leasedOf(t *topic) iter.Seq[*lease] {
	return func(yield func(*lease) bool) {
		for l := st.leases.head; l != nil; l = l.next {
			if l.e.topic == t && !yield(l) {
				return
			}
		}
	}
}

// delayedOf yields the delayed entries of t, in no particular order.
func (st *state) delayedOf(t *topic) iter.Seq[*entry] {
	return func(yield func(*entry) bool) {
		for _, e := range st.delayed {
			if e.topic == t && !yield(e) {
				return
			}
		}
	}
}
