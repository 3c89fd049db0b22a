package memory

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/job"
)

var _ broker.BatchStore = (*Broker)(nil)

// batch is the record of a batch (see broker.BatchStore), guarded by the
// state's mutex.
type batch struct {
	spec      broker.BatchSpec // Members is not kept
	state     string
	members   []broker.BatchMember
	index     map[string]int // member ID -> index in members
	counts    [3]int         // succeeded, dead, cancelled
	cbState   string
	cbID      string
	failed    string
	created   time.Time
	completed time.Time
}

func (g *batch) ended() int { return g.counts[0] + g.counts[1] + g.counts[2] }

// OpenBatch records the batch, registers it in its parent, and publishes its
// members, all under one lock: the batch exists before any member can end.
func (b *Broker) OpenBatch(ctx context.Context, spec broker.BatchSpec) error {
	if err := spec.Check(); err != nil {
		return err
	}
	if err := b.lock(ctx); err != nil {
		return err
	}
	st := b.st
	defer st.mu.Unlock()
	now := st.now()
	st.expireBatches(now)
	if g := st.batches[spec.ID]; g != nil && g.state != broker.BatchOpen {
		return nil // every member has ended: nothing to publish again
	}
	if st.batches[spec.ID] == nil {
		if spec.Parent != "" {
			p := st.batches[spec.Parent]
			if p == nil {
				return fmt.Errorf("%w: parent batch %q", broker.ErrNotFound, spec.Parent)
			}
			if p.state != broker.BatchOpen {
				return fmt.Errorf("%w: parent batch %q is %s", broker.ErrBatchClosed, spec.Parent, p.state)
			}
			p.add(broker.ChildMemberID(spec.ID), "")
		}
		g := &batch{spec: spec, state: broker.BatchOpen, index: map[string]int{}, cbState: broker.CallbackNone, created: now}
		g.spec.Members = nil
		if spec.Callback != nil {
			cb := *spec.Callback
			if cb.ID == "" {
				cb.ID = broker.CallbackID(spec.ID)
			}
			g.spec.Callback = &cb
			g.cbID = cb.ID
			g.cbState = broker.CallbackWaiting
		}
		for _, m := range spec.Members {
			g.add(m.ID, m.Topic)
		}
		if st.batches == nil {
			st.batches = map[string]*batch{}
		}
		st.batches[spec.ID] = g
	} else {
		g := st.batches[spec.ID]
		for _, m := range spec.Members {
			g.add(m.ID, m.Topic) // as on Redis: members not registered yet join
		}
	}
	for _, m := range spec.Members {
		if spec.Unpublished {
			break
		}
		m.Headers = maps.Clone(m.Headers)
		if m.Headers == nil {
			m.Headers = map[string]string{}
		}
		m.Headers[broker.HeaderBatch] = spec.ID
		st.publishLocked(&m, now)
	}
	st.flush(now)
	return nil
}

func (g *batch) add(id, topic string) {
	if _, ok := g.index[id]; ok {
		return
	}
	g.index[id] = len(g.members)
	g.members = append(g.members, broker.BatchMember{ID: id, Topic: topic, State: broker.MemberPending})
}

// publishLocked enqueues m (already checked, without a unique key: batch
// members and callbacks are not unique jobs) with st.mu held, routed to
// its partition as Publish routes it. It returns the job's ID.
func (st *state) publishLocked(m *broker.Message, now time.Time) string {
	e := st.newEntry(m)
	st.add(e, st.topic(m.Topic), m, now)
	return st.idOf(e)
}

// newEntry returns the entry of a job published from m, not enqueued.
func (st *state) newEntry(m *broker.Message) *entry {
	e := &entry{payload: cloneBytes(m.Payload), seq: st.next()}
	e.x = st.extraOf(m, e.seq)
	return e
}

// jobEnded records in its batch the end of e's job, a member or a callback
// (before e is dropped):
// state is broker.MemberSucceeded (with result), MemberDead or
// MemberCancelled; why is the failure's text for a member that did not
// succeed. A member's second end is not counted.
func (st *state) jobEnded(e *entry, state string, result []byte, why string, now time.Time) {
	if e.x == nil || e.x.headers == nil {
		return // not a member or a callback: their headers say so
	}
	x := e.x
	if id := x.headers[broker.HeaderBatchCallback]; id != "" {
		if g := st.batches[id]; g != nil && x.id == g.cbID {
			if state == broker.MemberSucceeded {
				g.cbState = broker.CallbackSucceeded
			} else {
				g.cbState = broker.CallbackDead
			}
		}
	}
	id := x.headers[broker.HeaderBatch]
	if id == "" {
		return
	}
	origin := e.topic.name + "/" + x.id
	if o := x.headers[broker.HeaderChainFailed]; o != "" {
		origin = o
	}
	if why != "" {
		origin += ": " + why
	}
	st.memberEnded(id, x.id, state, result, origin, now)
}

// memberEnded records the end of member of batch id, completing the batch
// when it was the last.
func (st *state) memberEnded(id, member, state string, result []byte, failed string, now time.Time) {
	g := st.batches[id]
	if g == nil {
		return
	}
	i, ok := g.index[member]
	if !ok || g.members[i].State != broker.MemberPending {
		return
	}
	g.members[i].State = state
	g.members[i].Result = cloneBytes(result)
	switch state {
	case broker.MemberSucceeded:
		g.counts[0]++
	case broker.MemberDead:
		g.counts[1]++
	default:
		g.counts[2]++
	}
	if state != broker.MemberSucceeded && g.failed == "" {
		g.failed = failed
	}
	if g.ended() < len(g.members) {
		return
	}
	if g.state == broker.BatchCancelled {
		if g.completed.IsZero() {
			g.completed = now
		}
		return
	}
	g.state = broker.BatchComplete
	g.completed = now
	st.finishBatch(id, g, now)
}

// finishBatch enqueues (or, for a RequireSuccess batch with a member that
// did not succeed, dead-letters) g's callback and ends g in its parent.
func (st *state) finishBatch(id string, g *batch, now time.Time) {
	allOK := g.counts[0] == len(g.members)
	if cb := g.spec.Callback; cb != nil {
		m := *cb
		// Not a unique job, whatever the spec says (the Redis broker gives
		// it a key of the batch's own instead).
		m.UniqueKey, m.UniqueFor = "", 0
		m.Headers = maps.Clone(cb.Headers)
		if m.Headers == nil {
			m.Headers = map[string]string{}
		}
		m.Headers[broker.HeaderBatchCallback] = id
		m.Headers[broker.HeaderBatchSucceeded] = strconv.Itoa(g.counts[0])
		m.Headers[broker.HeaderBatchDead] = strconv.Itoa(g.counts[1])
		m.Headers[broker.HeaderBatchCancelled] = strconv.Itoa(g.counts[2])
		m.Headers[broker.HeaderBatchTotal] = strconv.Itoa(len(g.members))
		if g.spec.RequireSuccess && !allOK {
			origin, why := splitFailed(g.failed)
			m.Headers[broker.HeaderChainFailed] = origin
			// Dead-lettered in the partition it would have been
			// published to.
			e := st.newEntry(&m)
			e.enq = st.tick(now)
			e.topic = st.topic(m.Topic)
			e.part = e.topic.route(&m)
			st.deadLetter(e, chainFailure(m.Topic, origin, why, now), 1, now)
			// After deadLetter, whose record of the callback's end would
			// say it ran and died.
			g.cbState = broker.CallbackDeadLettered
		} else {
			g.cbState = broker.CallbackEnqueued
			st.publishLocked(&m, now)
		}
	}
	if p := g.spec.Parent; p != "" {
		state := broker.MemberSucceeded
		if !allOK {
			state = broker.MemberDead
		}
		st.memberEnded(p, broker.ChildMemberID(id), state, nil, g.failed, now)
	}
}

// splitFailed splits a batch's Failed into the origin ("<topic>/<ID>") and
// the error.
func splitFailed(failed string) (origin, why string) {
	for i := 0; i+1 < len(failed); i++ {
		if failed[i] == ':' && failed[i+1] == ' ' {
			return failed[:i], failed[i+2:]
		}
	}
	return failed, ""
}

// chainFailure is the failure of a chain link dead-lettered because the
// link origin did not succeed.
func chainFailure(topic, origin, why string, now time.Time) job.Failure {
	msg := "conveyor: not run: chain link " + origin + " did not succeed"
	if why != "" {
		msg += ": " + why
	}
	return job.Failure{Error: msg, Reason: broker.ReasonChainFailed, Origin: topic, At: now}
}

// expireBatches drops the batches whose retention (or open TTL) ended.
func (st *state) expireBatches(now time.Time) {
	for id, g := range st.batches {
		end := g.created.Add(broker.DefaultBatchOpenTTL)
		if !g.completed.IsZero() {
			end = g.completed.Add(g.spec.RetentionOrDefault())
		}
		if !now.Before(end) {
			delete(st.batches, id)
		}
	}
}

// BatchInfo describes batch id.
func (b *Broker) BatchInfo(ctx context.Context, id string) (*broker.BatchInfo, error) {
	if err := b.lock(ctx); err != nil {
		return nil, err
	}
	st := b.st
	defer st.mu.Unlock()
	st.expireBatches(st.now())
	g := st.batches[id]
	if g == nil {
		return nil, fmt.Errorf("%w: batch %q", broker.ErrNotFound, id)
	}
	return g.info(id), nil
}

func (g *batch) info(id string) *broker.BatchInfo {
	gi := &broker.BatchInfo{
		ID: id, State: g.state, Total: len(g.members),
		Succeeded: g.counts[0], Dead: g.counts[1], Cancelled: g.counts[2],
		Members:       slices.Clone(g.members),
		CallbackState: g.cbState, CallbackID: g.cbID,
		RequireSuccess: g.spec.RequireSuccess, Parent: g.spec.Parent,
		Failed: g.failed, CreatedAt: g.created, CompletedAt: g.completed,
	}
	for i := range gi.Members {
		gi.Members[i].Result = cloneBytes(gi.Members[i].Result)
	}
	if g.spec.Callback != nil {
		gi.CallbackTopic = g.spec.Callback.Topic
	}
	return gi
}

// CancelBatch marks batch id cancelled and cancels its pending members, and
// its child batches, under one lock: waiting members are dead-lettered with
// reason job.ReasonCancelled, running ones get a cancel request, members
// not found (never published) are counted cancelled.
func (b *Broker) CancelBatch(ctx context.Context, id string) (*broker.BatchInfo, error) {
	if err := b.lock(ctx); err != nil {
		return nil, err
	}
	st := b.st
	defer st.mu.Unlock()
	now := st.now()
	st.advance(now)
	defer st.flush(now)
	st.expireBatches(now)
	g := st.batches[id]
	if g == nil {
		return nil, fmt.Errorf("%w: batch %q", broker.ErrNotFound, id)
	}
	st.cancelBatch(id, g, now)
	return g.info(id), nil
}

func (st *state) cancelBatch(id string, g *batch, now time.Time) {
	if g.state != broker.BatchOpen {
		return
	}
	g.state = broker.BatchCancelled
	if g.spec.Callback != nil {
		g.cbState = broker.CallbackSkipped
	}
	for _, m := range slices.Clone(g.members) {
		if m.State != broker.MemberPending {
			continue
		}
		if m.Topic == "" { // a child batch
			child := m.ID[len("batch:"):]
			if c := st.batches[child]; c != nil {
				st.cancelBatch(child, c, now)
			}
			st.memberEnded(id, m.ID, broker.MemberCancelled, nil, m.ID+": cancelled", now)
			continue
		}
		e := st.find(st.topics[m.Topic], m.ID)
		switch {
		case e == nil:
			st.memberEnded(id, m.ID, broker.MemberCancelled, nil, m.Topic+"/"+m.ID+": cancelled", now)
		case e.state == stLeased:
			e.cancel = true
		default:
			res := broker.CancelledQueued
			if e.state != stReady {
				res = broker.CancelledDelayed
			}
			st.remove(e.topic, []*entry{e})
			st.deadLetter(e, broker.CancelFailure(e.topic.name, res, now), e.attempt(), now)
		}
	}
	if p := g.spec.Parent; p != "" {
		st.memberEnded(p, broker.ChildMemberID(id), broker.MemberCancelled, nil, broker.ChildMemberID(id)+": cancelled", now)
	}
}

// endState returns the member state of a dead letter with failure f.
func endState(f *job.Failure) string {
	if f != nil && f.Reason == job.ReasonCancelled {
		return broker.MemberCancelled
	}
	return broker.MemberDead
}
