package memory

import "time"

// waiter is a Fetch waiting for jobs. Waiters are pooled; their fields other
// than ch and timer are guarded by state.mu while they are in the list.
type waiter struct {
	ch         chan struct{} // buffered 1: a wake-up
	timer      *time.Timer   // FetchWait
	topics     []string
	max        int
	signalled  bool // woken and not yet back under the lock
	prev, next *waiter
}

func (w *waiter) wants(topic string) bool {
	for _, t := range w.topics {
		if t == topic {
			return true
		}
	}
	return false
}

// waiterList is FIFO: the longest waiting Fetch is woken first.
type waiterList struct {
	head, tail *waiter
	n          int
}

func (l *waiterList) pushBack(w *waiter) {
	w.prev, w.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = w
	} else {
		l.head = w
	}
	l.tail = w
	l.n++
}

func (l *waiterList) remove(w *waiter) {
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		l.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		l.tail = w.prev
	}
	w.prev, w.next = nil, nil
	l.n--
}

// touch notes that t has ready jobs that waiters may want. It costs nothing
// when nobody waits.
func (st *state) touch(t *topic) {
	if st.waiters.n == 0 || t.touched {
		return
	}
	t.touched = true
	st.touched = append(st.touched, t)
}

// flush wakes waiters for the topics touched since the last flush.
func (st *state) flush(now time.Time) {
	for i, t := range st.touched {
		t.touched = false
		st.touched[i] = nil
		st.wake(t)
	}
	st.touched = st.touched[:0]
	if st.waiters.n > 0 {
		st.arm(now)
	}
}

// wake signals just enough waiters for t's ready jobs: each woken waiter is
// counted as taking its max, so n jobs do not wake a herd of fetchers.
// Waiters already woken and not yet back count too, so calling wake again is
// harmless.
func (st *state) wake(t *topic) {
	if t.paused {
		return
	}
	budget := t.ready
	for w := st.waiters.head; w != nil && budget > 0; w = w.next {
		if !w.wants(t.name) {
			continue
		}
		if !w.signalled {
			w.signalled = true
			select {
			case w.ch <- struct{}{}:
			default:
			}
		}
		budget -= w.max
	}
}

// removeWaiter takes w out of the list. A waiter that was woken but leaves
// without taking its jobs (cancelled, timed out, closed) passes the wake-up
// on.
func (st *state) removeWaiter(w *waiter, now time.Time) {
	st.waiters.remove(w)
	if w.signalled {
		w.signalled = false
		for _, name := range w.topics {
			if t := st.topics[name]; t != nil && t.ready > 0 {
				st.touch(t)
			}
		}
	}
	st.flush(now)
	if st.waiters.n == 0 && st.timerSet {
		st.timer.Stop()
		st.timerSet = false
	}
}

// release returns w to the pool. w is out of the list, so nobody signals it.
func (st *state) release(w *waiter) {
	w.timer.Stop()
	select {
	case <-w.ch:
	default:
	}
	w.topics = nil
	st.pool.Put(w)
}

// arm sets the broker's timer for the next delayed job or lease expiry, so
// that waiting fetchers see it promptly. It runs only while someone waits;
// otherwise Fetch finds due jobs and expired leases by itself.
func (st *state) arm(now time.Time) {
	if st.waiters.n == 0 || st.closed {
		return
	}
	var next int64
	has := false
	if len(st.delayed) > 0 {
		next, has = st.delayed[0].at, true
	}
	if h := st.leases.head; h != nil && (!has || h.e.at < next) {
		next, has = h.e.at, true
	}
	if !has || (st.timerSet && st.timerAt <= next) {
		return
	}
	d := time.Duration(next - st.tick(now))
	if d < time.Millisecond {
		d = time.Millisecond
	}
	st.timerAt, st.timerSet = next, true
	if st.timer == nil {
		st.timer = time.AfterFunc(d, st.onTimer)
		return
	}
	st.timer.Reset(d)
}

func (st *state) onTimer() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.timerSet = false
	if st.closed {
		return
	}
	now := st.now()
	st.advance(now)
	st.flush(now) // wakes waiters and re-arms
}
