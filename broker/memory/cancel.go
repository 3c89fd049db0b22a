package memory

import (
	"context"
	"fmt"

	"github.com/conveyor-jobs/conveyor/broker"
)

var (
	_ broker.Canceller     = (*Broker)(nil)
	_ broker.CancelWatcher = (*Broker)(nil)
)

// Cancel cancels the job of topic with ID id, as the Redis broker does: a
// ready or delayed job is moved to the dead-letter topic with reason
// job.ReasonCancelled; for a leased (running) job a cancel request is
// recorded, which [Broker.CancelRequested] reports to the server holding it,
// until the job is settled (a retry or snooze drops the request: the job
// ran to an outcome). An id that names no job but is the receipt of one of
// topic's entries names that entry's job. It returns an error wrapping
// [broker.ErrNotFound] when topic holds no such job.
func (b *Broker) Cancel(ctx context.Context, topic, id string) (broker.CancelResult, error) {
	if err := b.lock(ctx); err != nil {
		return 0, err
	}
	st := b.st
	defer st.mu.Unlock()
	now := st.now()
	st.advance(now)
	defer st.flush(now)
	e := st.find(st.topics[topic], id)
	if e == nil {
		return 0, fmt.Errorf("%w: job %q of %q (settled already, dead-lettered, or never published)", broker.ErrNotFound, id, topic)
	}
	var res broker.CancelResult
	switch e.state {
	case stLeased:
		e.cancel = true
		return broker.CancelRequested, nil
	case stReady:
		res = broker.CancelledQueued
	default:
		res = broker.CancelledDelayed
	}
	st.remove(e.topic, []*entry{e})
	st.deadLetter(e, broker.CancelFailure(e.topic.name, res, now), e.attempt(), now)
	return res, nil
}

// find returns the entry of t with job ID id, or else the entry with
// receipt id, or nil.
func (st *state) find(t *topic, id string) *entry {
	es := st.entries(t)
	for _, e := range es {
		if e.x != nil && e.x.id == id {
			return e
		}
	}
	seq, ok := st.seqOf(id)
	if !ok {
		return nil
	}
	for _, e := range es {
		if e.x == nil && e.seq == seq { // a job whose ID is its receipt
			return e
		}
	}
	for _, e := range es {
		if e.seq == seq {
			return e
		}
	}
	return nil
}

// CancelRequested returns the receipts of the deliveries among ds whose
// job's cancel was requested and which are still leased.
func (b *Broker) CancelRequested(ctx context.Context, ds ...*broker.Delivery) ([]string, error) {
	if err := b.lock(ctx); err != nil {
		return nil, err
	}
	defer b.st.mu.Unlock()
	var out []string
	for _, d := range ds {
		if d == nil {
			continue
		}
		if l := b.st.leasedEntry(d.Receipt); l != nil && l.e.cancel {
			out = append(out, d.Receipt)
		}
	}
	return out, nil
}
