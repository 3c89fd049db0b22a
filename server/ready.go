package server

import "sync"

// readyQueue holds the worker slots that were handed a delivery and have not
// started it yet, for the worker goroutines to take in order. Each slot
// keeps its delivery in cur from the fetch on, so a delivery that waits here
// is renewed by the heartbeat and abandoned at shutdown like a running one.
//
// A goroutine that finishes a job takes the next ready slot before it
// parks, and at most one parked goroutine is being woken at a time: a woken
// goroutine wakes the next one only if slots remain once it has taken its
// own. A batch of fetched deliveries is thus started by the goroutines that
// are already running, and by as many parked ones as the backlog needs,
// instead of waking one goroutine per delivery.
type readyQueue struct {
	mu      sync.Mutex
	cond    sync.Cond
	buf     []*worker // ring of len(workers): at most every slot is ready
	head    int
	n       int
	waiting int  // goroutines parked in pop
	waking  int  // parked goroutines signalled that have not taken a slot yet
	closed  bool // no more pushes: pop drains what is left, then returns nil
}

func newReadyQueue(size int) *readyQueue {
	q := &readyQueue{buf: make([]*worker, size)}
	q.cond.L = &q.mu
	return q
}

// push queues the slots ws, each holding a delivery in cur.
func (q *readyQueue) push(ws []*worker) {
	if len(ws) == 0 {
		return
	}
	q.mu.Lock()
	for _, w := range ws {
		q.buf[(q.head+q.n)%len(q.buf)] = w
		q.n++
	}
	q.wakeLocked()
	q.mu.Unlock()
}

// pop returns the next ready slot, waiting for one; it returns nil once the
// queue is closed and empty.
func (q *readyQueue) pop() *worker {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.n == 0 {
		if q.closed {
			return nil
		}
		q.waiting++
		q.cond.Wait()
		q.waiting--
		if q.waking > 0 {
			q.waking--
		}
	}
	w := q.buf[q.head]
	q.buf[q.head] = nil
	q.head = (q.head + 1) % len(q.buf)
	q.n--
	if q.n > 0 {
		q.wakeLocked()
	}
	return w
}

// wakeLocked wakes a parked goroutine for the slots queued, unless one is
// already on its way.
func (q *readyQueue) wakeLocked() {
	if q.waking == 0 && q.waiting > 0 {
		q.waking++
		q.cond.Signal()
	}
}

// close ends the queue: the goroutines take the slots left, then stop.
func (q *readyQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
}
