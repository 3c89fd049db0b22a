package memory

import (
	"context"
	"fmt"
	"iter"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/job"
)

var (
	_ broker.Partitioner        = (*Broker)(nil)
	_ broker.PartitionInspector = (*Broker)(nil)
)

// part is one partition of a topic: its ready queue and the counts of its
// leased and delayed jobs.
type part struct {
	ready   deque
	pending int64
	delayed int64
	queued  bool // in its topic's turns
}

// A topic of several partitions serves them in turn: turns is a FIFO ring
// of the indexes of its partitions that have ready jobs, each at most once.
// A Fetch takes one job from the partition at the front and puts that
// partition at the back while it has more, so one long partition cannot
// hold back the others, whatever the batch size. A topic that has only ever
// had one partition keeps no turns.
type turns struct {
	buf  []uint16
	head int
	n    int
}

func (r *turns) push(i uint16) {
	r.buf[(r.head+r.n)%len(r.buf)] = i
	r.n++
}

func (r *turns) pop() uint16 {
	i := r.buf[r.head]
	r.head = (r.head + 1) % len(r.buf)
	r.n--
	return i
}

// newTopic returns a topic of one partition.
func newTopic(name string) *topic {
	return &topic{name: name, dlq: job.DeadLetterTopic(name), parts: make([]part, 1), count: 1}
}

// grow gives t n partitions (n > len(t.parts)). The new ones are empty;
// turns are made, or enlarged keeping their order.
func (t *topic) grow(n int) {
	old := len(t.parts)
	t.parts = append(t.parts, make([]part, n-old)...)
	buf := make([]uint16, n)
	k := 0
	if old == 1 {
		// A single partition kept no turns.
		if t.parts[0].ready.len() > 0 {
			t.parts[0].queued = true
			buf[0] = 0
			k = 1
		}
	} else {
		for t.turns.n > 0 {
			buf[k] = t.turns.pop()
			k++
		}
	}
	t.turns = turns{buf: buf, n: k}
}

// route returns the partition of a job published to t: by its ordering key,
// else by its unique key (so that one unique key lives in one partition, as
// on Redis), else the next partition in turn.
func (t *topic) route(m *broker.Message) uint16 {
	if t.count <= 1 {
		return 0
	}
	switch {
	case m.Key != "":
		return uint16(broker.PartitionFor(m.Key, t.count))
	case m.UniqueKey != "":
		return uint16(broker.PartitionFor(m.UniqueKey, t.count))
	}
	p := t.spread % uint32(t.count)
	t.spread++
	return uint16(p)
}

// pushReady adds e to its partition's ready queue: at the back, or at the
// front for a redelivery (front set).
func (t *topic) pushReady(e *entry, front bool) {
	p := &t.parts[e.part]
	if front {
		p.ready.pushFront(e)
	} else {
		p.ready.pushBack(e)
	}
	t.ready++
	if len(t.parts) > 1 && !p.queued {
		p.queued = true
		t.turns.push(e.part)
	}
}

// popReady removes and returns t's next ready entry, from the partition
// whose turn it is. t must have a ready entry.
func (t *topic) popReady() *entry {
	t.ready--
	if len(t.parts) == 1 {
		return t.parts[0].ready.popFront()
	}
	for {
		i := t.turns.pop()
		p := &t.parts[i]
		if p.ready.len() == 0 { // emptied by a removal
			p.queued = false
			continue
		}
		e := p.ready.popFront()
		if p.ready.len() > 0 {
			t.turns.push(i)
		} else {
			p.queued = false
		}
		return e
	}
}

// compact drops the entries of t's ready queues that are no longer ready.
func (t *topic) compact() {
	t.ready = 0
	for i := range t.parts {
		q := &t.parts[i].ready
		q.compact()
		t.ready += q.len()
	}
}

// readyOf yields the ready entries of t, partition by partition, each
// partition's in queue order.
func (t *topic) readyOf() iter.Seq[*entry] {
	return func(yield func(*entry) bool) {
		for i := range t.parts {
			q := &t.parts[i].ready
			for k := 0; k < q.len(); k++ {
				if !yield(q.at(k)) {
					return
				}
			}
		}
	}
}

// addPending and addDelayed count d more leased or delayed jobs in e's
// partition and topic.
func (t *topic) addPending(e *entry, d int64) {
	t.pending += d
	t.parts[e.part].pending += d
}

func (t *topic) addDelayed(e *entry, d int64) {
	t.delayed += d
	t.parts[e.part].delayed += d
}

// SetPartitions sets topic's partition count to n, 1 to
// [broker.MaxPartitions] (see [broker.Partitioner]). Publish uses the new
// count at once: a job with a Key goes to partition
// broker.PartitionFor(Key, n), a unique job without one by its UniqueKey,
// any other to the partitions in turn. A job stays in the partition it was
// published to for good: its redeliveries, retries and snoozes come back
// to it, its dead letter is counted there, and a replay puts it back there.
// So partitions that a lower count leaves out are still fetched, settled and
// inspected until they are empty, and no job is lost by a change of count.
// Order per key holds among the jobs published under one count: a key that
// the new count maps elsewhere has its older jobs in the old partition and
// its newer ones in the new, and both are served.
func (b *Broker) SetPartitions(ctx context.Context, topic string, n int) error {
	if topic == "" {
		return fmt.Errorf("%w: empty topic", broker.ErrInvalidMessage)
	}
	if n < 1 || n > broker.MaxPartitions {
		return fmt.Errorf("%w: %d partitions for topic %q: want 1 to %d", broker.ErrInvalidMessage, n, topic, broker.MaxPartitions)
	}
	if err := b.lock(ctx); err != nil {
		return err
	}
	st := b.st
	defer st.mu.Unlock()
	t := st.topic(topic)
	t.count = n
	if n > len(t.parts) {
		t.grow(n)
	}
	return nil
}

// Partitions returns topic's partition count: 1 for a topic never
// partitioned.
func (b *Broker) Partitions(ctx context.Context, topic string) (int, error) {
	if err := b.lock(ctx); err != nil {
		return 0, err
	}
	defer b.st.mu.Unlock()
	if t := b.st.topics[topic]; t != nil {
		return t.count, nil
	}
	return 1, nil
}

// InspectPartitions describes topic's partitions one by one, by index: those
// in its count, then those beyond it that still hold jobs or dead letters.
// Their counts add up to [Broker.Inspect]'s. Node is always "". It returns
// an error wrapping [broker.ErrNotFound] for a topic never used.
func (b *Broker) InspectPartitions(ctx context.Context, name string) ([]broker.PartitionInfo, error) {
	st, _, err := b.lockCurrent(ctx)
	if err != nil {
		return nil, err
	}
	defer st.mu.Unlock()
	t, dl, err := st.inspected(name)
	if err != nil {
		return nil, err
	}
	n := len(t.parts)
	if dl != nil {
		n = max(n, len(dl.parts))
	}
	out := []broker.PartitionInfo{}
	for i := range n {
		info := broker.PartitionInfo{Partition: i, Draining: i >= max(t.count, 1)}
		if i < len(t.parts) {
			p := &t.parts[i]
			info.Lag = int64(p.ready.len())
			info.Pending = p.pending
			info.Length = info.Lag + info.Pending
			info.Delayed = p.delayed
		}
		if dl != nil && i < len(dl.parts) {
			p := &dl.parts[i]
			info.DeadLetters = int64(p.ready.len()) + p.pending + p.delayed
		}
		if i < t.count || info.Length > 0 || info.Delayed > 0 || info.DeadLetters > 0 {
			out = append(out, info)
		}
	}
	return out, nil
}
