package memory

import (
	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/job"
)

// Where an entry is. Every stored entry is in exactly one place.
const (
	stGone    uint8 = iota // settled, replayed away or trimmed
	stReady                // in its partition's ready queue
	stDelayed              // in the broker's delayed heap
	stLeased               // delivered, in the lease list and the leased map
)

// entry is one stored job: the analogue of a stream entry (or a delayed-set
// member) in the Redis broker. A retry or snooze gives it a new receipt, as a
// new stream entry would get a new ID.
type entry struct {
	job     job.Job // job.Attempt is the recorded attempt
	receipt string
	seq     uint64 // from the receipt; orders dead letters
	pos     uint64 // position in the topic's stream; orders trims
	topic   *topic
	// at is, in nanoseconds since state.epoch: when a delayed entry is due,
	// when a ready entry became ready, when a leased entry's lease ends.
	at         int64
	holder     *consumer
	deliveries int    // deliveries of this stored entry
	heapIdx    int32  // index in the delayed heap
	part       uint16 // partition of topic
	state      uint8
	cancel     bool   // a leased entry's cancel was requested (Cancel)
	prev, next *entry // lease list
}

// attempt returns the attempt of e's current (or last) delivery: the
// recorded attempt plus the deliveries before it that had no outcome.
func (e *entry) attempt() int {
	return broker.AddAttempts(e.job.Attempt, int64(max(e.deliveries, 1)-1))
}

// deque is a FIFO ring buffer of entries that can also push at the front
// (for redeliveries, which come before unread jobs).
type deque struct {
	buf  []*entry
	head int
	n    int
}

func (q *deque) len() int { return q.n }

func (q *deque) grow() {
	c := len(q.buf) * 2
	if c == 0 {
		c = 16
	}
	q.resize(c)
}

func (q *deque) resize(c int) {
	nb := make([]*entry, c)
	for i := 0; i < q.n; i++ {
		nb[i] = q.buf[(q.head+i)%len(q.buf)]
	}
	q.buf, q.head = nb, 0
}

func (q *deque) pushBack(e *entry) {
	if q.n == len(q.buf) {
		q.grow()
	}
	q.buf[(q.head+q.n)%len(q.buf)] = e
	q.n++
}

func (q *deque) pushFront(e *entry) {
	if q.n == len(q.buf) {
		q.grow()
	}
	q.head = (q.head - 1 + len(q.buf)) % len(q.buf)
	q.buf[q.head] = e
	q.n++
}

func (q *deque) popFront() *entry {
	e := q.buf[q.head]
	q.buf[q.head] = nil
	q.head = (q.head + 1) % len(q.buf)
	q.n--
	if len(q.buf) > minShrink && q.n < len(q.buf)/8 {
		q.resize(len(q.buf) / 2) // give back what a burst took
	}
	return e
}

// minShrink is the capacity below which a deque does not shrink.
const minShrink = 1024

// at returns the i-th entry from the front.
func (q *deque) at(i int) *entry { return q.buf[(q.head+i)%len(q.buf)] }

// compact drops the entries that are no longer ready, keeping order.
func (q *deque) compact() {
	j := 0
	for i := 0; i < q.n; i++ {
		if e := q.at(i); e.state == stReady {
			q.buf[(q.head+j)%len(q.buf)] = e
			j++
		}
	}
	for i := j; i < q.n; i++ {
		q.buf[(q.head+i)%len(q.buf)] = nil
	}
	q.n = j
}

// entryHeap is a min-heap of delayed entries by due time (then sequence, so
// jobs due at the same instant keep publication order).
type entryHeap []*entry

func (h entryHeap) less(i, j int) bool {
	if h[i].at == h[j].at {
		return h[i].seq < h[j].seq
	}
	return h[i].at < h[j].at
}

func (h entryHeap) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx = int32(i)
	h[j].heapIdx = int32(j)
}

func (h *entryHeap) push(e *entry) {
	e.heapIdx = int32(len(*h))
	*h = append(*h, e)
	h.up(len(*h) - 1)
}

func (h *entryHeap) remove(i int) *entry {
	old := *h
	n := len(old) - 1
	if i != n {
		old.swap(i, n)
	}
	e := old[n]
	old[n] = nil
	*h = old[:n]
	if i != n {
		if !h.down(i) {
			h.up(i)
		}
	}
	e.heapIdx = -1
	return e
}

func (h entryHeap) up(j int) {
	for j > 0 {
		i := (j - 1) / 2
		if !h.less(j, i) {
			break
		}
		h.swap(i, j)
		j = i
	}
}

func (h entryHeap) down(i0 int) bool {
	i, n := i0, len(h)
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		j := l
		if r := l + 1; r < n && h.less(r, l) {
			j = r
		}
		if !h.less(j, i) {
			break
		}
		h.swap(i, j)
		i = j
	}
	return i > i0
}

// leaseList holds leased entries in order of lease expiry. The lease is the
// same for every delivery, so appending at fetch and moving to the back at
// Extend keeps the list sorted without a heap.
type leaseList struct {
	head, tail *entry
}

func (l *leaseList) pushBack(e *entry) {
	e.prev, e.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = e
	} else {
		l.head = e
	}
	l.tail = e
}

func (l *leaseList) remove(e *entry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		l.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		l.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (l *leaseList) moveToBack(e *entry) {
	if l.tail == e {
		return
	}
	l.remove(e)
	l.pushBack(e)
}
