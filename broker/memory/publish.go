package memory

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"strconv"
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
	e := &entry{}
	e.job.Payload = cloneBytes(m.Payload)
	e.job.Headers = maps.Clone(m.Headers)
	e.job.MaxAttempts, e.job.Timeout = m.MaxAttempts, m.Timeout
	e.job.UniqueKey, e.job.UniqueFor = m.UniqueKey, m.UniqueFor
	e.job.Key = m.Key
	e.receipt, e.seq = b.st.receipt()
	e.job.ID = m.ID
	if e.job.ID == "" {
		e.job.ID = e.receipt
	}
	e.job.Attempt = 1

	st := b.st
	st.mu.Lock()
	defer st.mu.Unlock()
	if b.closedLocked() {
		return "", broker.ErrClosed
	}
	now := st.now()
	if dup := st.duplicate(&m, now); dup != nil {
		return dup.ID, dup
	}
	e.job.EnqueuedAt = now
	t := st.topic(m.Topic)
	e.part = t.route(&e.job)
	st.enqueue(e, t, m.Due(now), now)
	if m.UniqueKey != "" {
		st.takeClaim(m.Topic, m.UniqueKey, e.job.ID)
	}
	st.flush(now)
	return e.job.ID, nil
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
	// One allocation each for the entries, the payloads and the receipts.
	entries := make([]entry, len(ms))
	var payloads []byte
	if size > 0 {
		payloads = make([]byte, 0, size)
	}
	last := st.seq.Add(uint64(len(ms)))
	first := last - uint64(len(ms)) + 1
	rbuf := make([]byte, 0, len(ms)*(len(st.prefix)+8))
	ends := make([]int, len(ms))
	for i := range ms {
		rbuf = append(rbuf, st.prefix...)
		rbuf = strconv.AppendUint(rbuf, first+uint64(i), 36)
		ends[i] = len(rbuf)
	}
	receipts := string(rbuf)
	ids := make([]string, len(ms))
	start := 0
	for i := range ms {
		m, e := &ms[i], &entries[i]
		e.receipt, e.seq = receipts[start:ends[i]], first+uint64(i)
		start = ends[i]
		if len(m.Payload) > 0 {
			off := len(payloads)
			payloads = append(payloads, m.Payload...)
			e.job.Payload = payloads[off:len(payloads):len(payloads)]
		}
		e.job.Headers = maps.Clone(m.Headers)
		e.job.MaxAttempts, e.job.Timeout = m.MaxAttempts, m.Timeout
		e.job.UniqueKey, e.job.UniqueFor = m.UniqueKey, m.UniqueFor
		e.job.Key = m.Key
		e.job.ID = m.ID
		if e.job.ID == "" {
			e.job.ID = e.receipt
		}
		e.job.Attempt = 1
		ids[i] = e.job.ID
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
		e.job.EnqueuedAt = now
		e.part = t.route(&e.job)
		st.enqueue(e, t, ms[i].Due(now), now)
		if ms[i].UniqueKey != "" {
			st.takeClaim(ms[i].Topic, ms[i].UniqueKey, e.job.ID)
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

// enqueue stores e in partition e.part of t, ready at due.
func (st *state) enqueue(e *entry, t *topic, due, now time.Time) {
	if int(e.part) >= len(t.parts) {
		t.grow(int(e.part) + 1) // a dead letter or replay from a partition t lacks
	}
	e.topic = t
	e.job.Topic = t.name
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
	t.lastID = e.receipt
	st.touch(t)
}
