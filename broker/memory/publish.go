package memory

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
)

// Publish enqueues one job and returns its ID. It copies m's payload and
// headers, so the caller may reuse them. When another job of m's topic holds
// m.UniqueKey, it enqueues nothing and returns that job's ID and a
// *broker.DuplicateError (see unique.go for the states of a key).
func (b *Broker) Publish(ctx context.Context, m broker.Message) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if m.Topic == "" {
		return "", fmt.Errorf("%w: empty topic", broker.ErrInvalidMessage)
	}
	if err := m.CheckLimits(); err != nil {
		return "", err
	}
	st := b.st
	e := &entry{payload: cloneBytes(m.Payload), seq: st.next()}
	e.x = st.extraOf(&m, e.seq)
	id := ""
	if e.x != nil {
		id = e.x.id
	} else {
		id = st.receiptOf(e.seq)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if b.closedLocked() {
		return "", broker.ErrClosed
	}
	now := st.now()
	if dup := st.duplicate(&m, now); dup != nil {
		return dup.ID, dup
	}
	st.add(e, st.topic(m.Topic), &m, now)
	if m.UniqueKey != "" {
		st.takeClaim(m.Topic, m.UniqueKey, id)
	}
	st.flush(now)
	return id, nil
}

// extraOf returns the extra of a job published from m as receipt seq, or
// nil when m sets none of its fields.
func (st *state) extraOf(m *broker.Message, seq uint64) *extra {
	if m.ID == "" && len(m.Headers) == 0 && m.MaxAttempts == 0 && m.Timeout == 0 &&
		m.UniqueKey == "" && m.UniqueFor == 0 && m.Key == "" {
		return nil
	}
	x := &extra{
		id:          m.ID,
		headers:     maps.Clone(m.Headers),
		maxAttempts: m.MaxAttempts,
		timeout:     m.Timeout,
		uniqueKey:   m.UniqueKey,
		uniqueFor:   m.UniqueFor,
		key:         m.Key,
	}
	if x.id == "" {
		x.id = st.receiptOf(seq)
	}
	return x
}

// extra returns e's extra, giving it one (whose id is e's receipt, which
// must still be its job's ID) when it has none.
func (st *state) extra(e *entry) *extra {
	if e.x == nil {
		e.x = &extra{id: st.receiptOf(e.seq)}
	}
	return e.x
}

// idOf returns the ID of e's job.
func (st *state) idOf(e *entry) string {
	if e.x != nil {
		return e.x.id
	}
	return st.receiptOf(e.seq)
}

// PublishBatch enqueues ms under one lock and returns their IDs in order. It
// validates every message first: on error nothing is enqueued. A message
// whose unique key another job holds (one published before, or earlier in
// ms) is not enqueued: its ID is the holder's and its index is in the
// Duplicates of the *broker.BatchError returned; the others are enqueued.
func (b *Broker) PublishBatch(ctx context.Context, ms []broker.Message) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	size := 0
	for i := range ms {
		if ms[i].Topic == "" {
			return nil, fmt.Errorf("%w: message %d: empty topic", broker.ErrInvalidMessage, i)
		}
		if err := ms[i].CheckLimits(); err != nil {
			return nil, fmt.Errorf("message %d: %w", i, err)
		}
		size += len(ms[i].Payload)
	}
	if len(ms) == 0 {
		return []string{}, nil
	}
	st := b.st
	// One allocation each for the entries, the payloads and the IDs that
	// are receipts.
	entries := make([]entry, len(ms))
	var payloads []byte
	if size > 0 {
		payloads = make([]byte, 0, size)
	}
	last := st.seq.Add(uint64(len(ms)))
	first := last - uint64(len(ms)) + 1
	var rbuf []byte
	ends := make([]int, len(ms))
	for i := range ms {
		e := &entries[i]
		e.seq = first + uint64(i)
		e.x = st.extraOf(&ms[i], e.seq)
		if e.x == nil {
			if rbuf == nil {
				rbuf = make([]byte, 0, len(ms)*(len(st.prefix)+8))
			}
			rbuf = st.appendReceipt(rbuf, e.seq)
		}
		ends[i] = len(rbuf)
		if p := ms[i].Payload; len(p) > 0 {
			off := len(payloads)
			payloads = append(payloads, p...)
			e.payload = payloads[off:len(payloads):len(payloads)]
		}
	}
	receipts := string(rbuf)
	ids := make([]string, len(ms))
	start := 0
	for i := range ms {
		if x := entries[i].x; x != nil {
			ids[i] = x.id
		} else {
			ids[i] = receipts[start:ends[i]]
		}
		start = ends[i]
	}

	st.mu.Lock()
	defer st.mu.Unlock()
	if b.closedLocked() {
		return nil, broker.ErrClosed
	}
	now := st.now()
	var t *topic
	var batchErr *broker.BatchError
	for i := range ms {
		if dup := st.duplicate(&ms[i], now); dup != nil {
			if batchErr == nil {
				batchErr = &broker.BatchError{Err: dup}
			}
			batchErr.Duplicates = append(batchErr.Duplicates, i)
			ids[i] = dup.ID
			continue
		}
		if t == nil || t.name != ms[i].Topic {
			t = st.topic(ms[i].Topic)
		}
		e := &entries[i]
		st.add(e, t, &ms[i], now)
		if ms[i].UniqueKey != "" {
			st.takeClaim(ms[i].Topic, ms[i].UniqueKey, e.x.id)
		}
	}
	st.flush(now)
	if batchErr != nil {
		return ids, batchErr
	}
	return ids, nil
}

func cloneBytes(p []byte) []byte {
	if len(p) == 0 {
		return nil
	}
	return bytes.Clone(p)
}

// add enqueues e, a new job published from m to t at now: in the partition
// t.route gives m, ready at m's due time. Every publication goes through it.
func (st *state) add(e *entry, t *topic, m *broker.Message, now time.Time) {
	e.enq = st.tick(now)
	e.part = t.route(m)
	st.enqueue(e, t, m.Due(now), now)
}

// enqueue stores e in partition e.part of t, ready at due.
func (st *state) enqueue(e *entry, t *topic, due, now time.Time) {
	if int(e.part) >= len(t.parts) {
		t.grow(int(e.part) + 1) // a dead letter or replay from a partition t lacks
	}
	e.topic = t
	e.at = st.tick(due)
	if e.at > st.tick(now) {
		e.state = stDelayed
		st.delayed.push(e)
		t.addDelayed(e, 1)
		return
	}
	st.makeReady(e)
}

// makeReady appends e to its partition. e.at keeps its due time: the time it
// became ready, for Trim.
func (st *state) makeReady(e *entry) {
	t := e.topic
	e.state = stReady
	st.pos++
	e.pos = st.pos
	t.pushReady(e, false)
	t.lastID = e.seq
	st.touch(t)
}
