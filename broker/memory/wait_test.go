package memory

import (
	"testing"
	"time"
)

// wake signals only as many waiters as the ready jobs need, counting each
// woken waiter as taking its max, and is idempotent.
func TestWakeBudget(t *testing.T) {
	cases := []struct {
		name   string
		ready  int
		maxes  []int
		topics [][]string
		want   []bool
	}{
		{"one job wakes one waiter", 1, []int{1, 1, 1}, nil, []bool{true, false, false}},
		{"three jobs wake three", 3, []int{1, 1, 1}, nil, []bool{true, true, true}},
		{"a big max covers all", 5, []int{10, 10}, nil, []bool{true, false}},
		{"max 2 each", 3, []int{2, 2, 2}, nil, []bool{true, true, false}},
		{"other topics are skipped", 1, []int{1, 1}, [][]string{{"other"}, {"x", "t"}}, []bool{false, true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := New(&Options{FetchWait: time.Second})
			defer b.Close()
			st := b.st
			st.mu.Lock()
			defer st.mu.Unlock()
			tp := st.topic("t")
			for range tc.ready {
				tp.pushReady(&entry{state: stReady, topic: tp}, false)
			}
			ws := make([]*waiter, len(tc.maxes))
			for i, m := range tc.maxes {
				ws[i] = &waiter{ch: make(chan struct{}, 1), topics: []string{"t"}, max: m}
				if tc.topics != nil {
					ws[i].topics = tc.topics[i]
				}
				st.waiters.pushBack(ws[i])
			}
			for range 3 { // repeated wakes signal nobody new
				st.touch(tp)
				st.flush(time.Now())
			}
			for i, w := range ws {
				if w.signalled != tc.want[i] || (len(w.ch) == 1) != tc.want[i] {
					t.Errorf("waiter %d signalled %v (chan %d), want %v", i, w.signalled, len(w.ch), tc.want[i])
				}
			}
			if st.timer != nil {
				st.timer.Stop()
			}
		})
	}
}

// A woken waiter that leaves without taking its job passes the wake-up on.
func TestWakePassedOn(t *testing.T) {
	b := New(&Options{FetchWait: time.Second})
	defer b.Close()
	st := b.st
	st.mu.Lock()
	defer st.mu.Unlock()
	tp := st.topic("t")
	tp.pushReady(&entry{state: stReady, topic: tp}, false)
	w0 := &waiter{ch: make(chan struct{}, 1), topics: []string{"t"}, max: 1}
	w1 := &waiter{ch: make(chan struct{}, 1), topics: []string{"t"}, max: 1}
	st.waiters.pushBack(w0)
	st.waiters.pushBack(w1)
	st.touch(tp)
	st.flush(time.Now())
	if !w0.signalled || w1.signalled {
		t.Fatalf("signalled %v %v, want the first only", w0.signalled, w1.signalled)
	}
	st.removeWaiter(w0, time.Now()) // cancelled before taking
	if !w1.signalled || len(w1.ch) != 1 {
		t.Errorf("the second waiter was not woken when the first left")
	}
	st.removeWaiter(w1, time.Now())
	if st.timerSet {
		t.Errorf("timer armed with no waiter")
	}
}

func TestDequeAndHeap(t *testing.T) {
	var q deque
	es := make([]*entry, 40)
	for i := range es {
		es[i] = &entry{seq: uint64(i), state: stReady}
	}
	for _, e := range es[10:] {
		q.pushBack(e)
	}
	for i := 9; i >= 0; i-- {
		q.pushFront(es[i])
	}
	for i := range es {
		if q.at(i) != es[i] {
			t.Fatalf("at(%d) = seq %d", i, q.at(i).seq)
		}
	}
	for i := 0; i < 40; i += 2 {
		es[i].state = stGone
	}
	q.compact()
	if q.len() != 20 {
		t.Fatalf("len after compact = %d", q.len())
	}
	for i := 1; i < 40; i += 2 {
		if e := q.popFront(); e != es[i] {
			t.Fatalf("popFront = seq %d, want %d", e.seq, i)
		}
	}

	// A burst grows the buffer; draining it gives memory back.
	var big deque
	for i := range 10000 {
		big.pushBack(&entry{seq: uint64(i)})
	}
	for i := range 10000 {
		if e := big.popFront(); e.seq != uint64(i) {
			t.Fatalf("popFront = %d, want %d", e.seq, i)
		}
	}
	if len(big.buf) > 2*minShrink {
		t.Errorf("after draining, capacity %d", len(big.buf))
	}

	var h entryHeap
	for i, d := range []int64{5, 3, 9, 1, 7, 3, 3} {
		h.push(&entry{seq: uint64(i), at: d})
	}
	h.remove(2) // whatever sits there
	prev := &entry{}
	for len(h) > 0 {
		e := h.remove(0)
		if e.at < prev.at || (e.at == prev.at && e.seq < prev.seq) {
			t.Fatalf("heap out of order: %d/%d after %d/%d", e.at, e.seq, prev.at, prev.seq)
		}
		prev = e
	}
}

func TestReceiptRoundTrip(t *testing.T) {
	b := New(nil)
	defer b.Close()
	st := b.st
	st.seq.Store(1<<64 - 3)
	for range 2 {
		seq := st.next()
		r := st.receiptOf(seq)
		if got, ok := st.seqOf(r); !ok || got != seq {
			t.Errorf("seqOf(%q) = %d, %v; want %d", r, got, ok, seq)
		}
		if n := len(r) - len(st.prefix); n != receiptDigits(seq) {
			t.Errorf("receipt %q has %d digits, receiptDigits says %d", r, n, receiptDigits(seq))
		}
	}
	for _, seq := range []uint64{1, 35, 36, 1295, 1296, 1 << 40} {
		if r := st.receiptOf(seq); len(r)-len(st.prefix) != receiptDigits(seq) {
			t.Errorf("receipt %q of %d: receiptDigits says %d digits", r, seq, receiptDigits(seq))
		}
	}
	// Only a receipt's own spelling parses: no leading zeros.
	for _, bad := range []string{"", st.prefix, "zzzzzz-1", st.prefix + "A1", st.prefix + "-", st.prefix + "zzzzzzzzzzzzzzzzz", st.prefix + "0", st.prefix + "01"} {
		if _, ok := st.seqOf(bad); ok {
			t.Errorf("seqOf(%q) ok", bad)
		}
	}
}
