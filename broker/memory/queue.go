package memory

import (
	"time"

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
// new stream entry would get a new ID. Its receipt is st.prefix + base36(seq),
// made when needed.
//
// An entry is kept small, as a broker may hold millions: the fields a plain
// job leaves at their zero value live in extra, allocated only for a job
// that has one; what a delivery needs (its holder, its place in the lease
// list) lives in a lease, allocated only while the entry is leased.
type entry struct {
	payload []byte // shared with deliveries, which must not modify it
	x       *extra // nil for a job with only a payload
	topic   *topic
	seq     uint64 // the receipt's sequence number; orders dead letters
	pos     uint64 // position in the topic's stream; orders trims
	// at is, in nanoseconds since state.epoch: when a delayed entry is due,
	// when a ready entry became ready, when a leased entry's lease ends.
	at  int64
	enq int64 // the job's EnqueuedAt, in nanoseconds since state.epoch
	// n is, while the entry is delayed, its index in the delayed heap;
	// otherwise the deliveries of this stored entry.
	n      int32
	part   uint16 // partition of topic
	state  uint8
	cancel bool // a leased entry's cancel was requested (Cancel)
}

// extra holds the fields of a stored job that many jobs leave unset. Once
// an entry has one, its id is set.
type extra struct {
	id          string // the job's ID
	attempt     int    // the recorded attempt; 0 means 1
	headers     map[string]string
	maxAttempts int
	timeout     time.Duration
	uniqueKey   string
	uniqueFor   time.Duration
	key         string
	failure     *job.Failure
}

// lease is the delivery of a leased entry: who holds it, and its place in
// the lease list.
type lease struct {
	e          *entry
	holder     *consumer
	prev, next *lease
}

// deliveries returns the deliveries of e, which must not be delayed.
func (e *entry) deliveries() int { return int(e.n) }

// recorded returns e's recorded attempt.
func (e *entry) recorded() int {
	if e.x == nil || e.x.attempt == 0 {
		return 1
	}
	return e.x.attempt
}

// attempt returns the attempt of e's current (or last) delivery: the
// recorded attempt plus the deliveries before it that had no outcome.
func (e *entry) attempt() int {
	return broker.AddAttempts(e.recorded(), int64(max(e.deliveries(), 1)-1))
}

// uniqueKey returns e's unique key, or "".
func (e *entry) uniqueKey() string {
	if e.x == nil {
		return ""
	}
	return e.x.uniqueKey
}

// drop lets go of what e references, once it is out of every queue: the
// entry may share an allocation with others that live on.
func (e *entry) drop() {
	e.payload, e.x = nil, nil
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
	h[i].n = int32(i)
	h[j].n = int32(j)
}

func (h *entryHeap) push(e *entry) {
	e.n = int32(len(*h))
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
	e.n = 0 // no deliveries
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

// leaseList holds the leases in order of expiry. The lease is the same for
// every delivery, so appending at fetch and moving to the back at Extend
// keeps the list sorted without a heap.
type leaseList struct {
	head, tail *lease
}

func (l *leaseList) pushBack(e *lease) {
	e.prev, e.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = e
	} else {
		l.head = e
	}
	l.tail = e
}

func (l *leaseList) remove(e *lease) {
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

func (l *leaseList) moveToBack(e *lease) {
	if l.tail == e {
		return
	}
	l.remove(e)
	l.pushBack(e)
}
