package memory

import (
	"container/heap"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
)

// claim is a unique key held by a job: from its publication until it is
// acked (then until kept, when the job asked to keep it) or dead-lettered.
type claim struct {
	id   string // the holder's job ID
	kept int64  // after the ack: the tick at which the claim ends; 0 while the job lives
}

// claimKey is the key of a claim in state.claims: unique keys are per topic.
func claimKey(topic, key string) string { return topic + "\x00" + key }

// holder returns the ID of the job holding key in topic at now, or "". A
// kept claim that ended is removed.
func (st *state) holder(topic, key string, now time.Time) string {
	k := claimKey(topic, key)
	c, ok := st.claims[k]
	if !ok {
		return ""
	}
	if c.kept != 0 && c.kept <= st.tick(now) {
		delete(st.claims, k)
		return ""
	}
	return c.id
}

// take makes job id the holder of key in topic.
func (st *state) takeClaim(topic, key, id string) {
	if st.claims == nil {
		st.claims = make(map[string]claim)
	}
	st.claims[claimKey(topic, key)] = claim{id: id}
}

// duplicate returns the *broker.DuplicateError of m when another job holds
// its unique key at now, else nil.
func (st *state) duplicate(m *broker.Message, now time.Time) *broker.DuplicateError {
	if m.UniqueKey == "" {
		return nil
	}
	if id := st.holder(m.Topic, m.UniqueKey, now); id != "" {
		return &broker.DuplicateError{Topic: m.Topic, Key: m.UniqueKey, ID: id}
	}
	return nil
}

// releaseClaim ends the claim of e's unique key if e's job holds it: at
// once, or, when acked is set and the job asked to keep its key, at its
// EnqueuedAt + UniqueFor (at once when that has passed).
func (st *state) releaseClaim(e *entry, acked bool, now time.Time) {
	x := e.x
	if x == nil || x.uniqueKey == "" {
		return
	}
	k := claimKey(e.topic.name, x.uniqueKey)
	c, ok := st.claims[k]
	if !ok || c.id != x.id {
		return
	}
	if acked && x.uniqueFor > 0 {
		if until := e.enq + int64(x.uniqueFor); until > st.tick(now) {
			end := max(until, 1)
			st.claims[k] = claim{id: c.id, kept: end}
			heap.Push(&st.kept, keptClaim{end: end, key: k, id: c.id})
			return
		}
	}
	delete(st.claims, k)
}

// keptClaim is a claim kept after its job's ack, until end (a tick).
type keptClaim struct {
	end     int64
	key, id string
}

// keptHeap orders kept claims by end, so that the ended ones are dropped
// without a scan: a key that is never published again does not stay in
// state.claims.
type keptHeap []keptClaim

func (h keptHeap) Len() int           { return len(h) }
func (h keptHeap) Less(i, j int) bool { return h[i].end < h[j].end }
func (h keptHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *keptHeap) Push(x any)        { *h = append(*h, x.(keptClaim)) }
func (h *keptHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// dropKept removes the kept claims that ended at or before tick, unless
// their key was taken again since.
func (st *state) dropKept(tick int64) {
	for len(st.kept) > 0 && st.kept[0].end <= tick {
		k := heap.Pop(&st.kept).(keptClaim)
		if c, ok := st.claims[k.key]; ok && c.id == k.id && c.kept == k.end {
			delete(st.claims, k.key)
		}
	}
}
