package server

import (
	"sync"
	"testing"
	"time"
)

func TestReadyQueueOrderAndDrainAfterClose(t *testing.T) {
	ws := []*worker{{}, {}, {}}
	q := newReadyQueue(len(ws))
	q.push(ws[:2])
	if got := q.pop(); got != ws[0] {
		t.Fatalf("first pop = %p, want %p", got, ws[0])
	}
	q.push(ws[2:])
	q.close()
	for _, want := range ws[1:] {
		if got := q.pop(); got != want {
			t.Fatalf("pop after close = %p, want %p (queued slots are drained)", got, want)
		}
	}
	if got := q.pop(); got != nil {
		t.Fatalf("pop of a closed, empty queue = %p, want nil", got)
	}
}

// Every slot of a batch starts although each goroutine keeps the slot it
// took (a handler that does not return): the woken goroutines wake the
// others, so no slot waits while a goroutine is parked.
func TestReadyQueueStartsAWholeBatchOfBlockingJobs(t *testing.T) {
	const n = 16
	q := newReadyQueue(n)
	started := make(chan *worker, n)
	release := make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for {
				w := q.pop()
				if w == nil {
					return
				}
				started <- w
				<-release
			}
		})
	}
	waitParked(t, q, n)
	ws := make([]*worker, n)
	for i := range ws {
		ws[i] = &worker{}
	}
	q.push(ws)
	seen := map[*worker]bool{}
	deadline := time.After(time.Minute)
	for len(seen) < n {
		select {
		case w := <-started:
			seen[w] = true
		case <-deadline:
			t.Fatalf("%d of %d slots started; the others wait in the queue", len(seen), n)
		}
	}
	close(release)
	q.close()
	wg.Wait()
}

// Slots go round between a pusher and goroutines that run them, in batches
// of every size: each push is taken exactly once and nothing is left queued.
func TestReadyQueueRoundTrips(t *testing.T) {
	const slots, goroutines, rounds = 8, 8, 2000
	q := newReadyQueue(slots)
	free := make(chan *worker, slots)
	all := make([]*worker, slots)
	for i := range all {
		all[i] = &worker{}
		free <- all[i]
	}
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for {
				w := q.pop()
				if w == nil {
					return
				}
				w.n.Add(1)
				free <- w
			}
		})
	}
	batch := make([]*worker, 0, slots)
	total := 0
	for r := range rounds {
		batch = append(batch[:0], <-free)
		for len(batch) < 1+r%slots {
			batch = append(batch, <-free)
		}
		q.push(batch)
		total += len(batch)
	}
	for range slots {
		<-free
	}
	q.close()
	wg.Wait()
	if q.n != 0 {
		t.Fatalf("%d slots left queued", q.n)
	}
	ran := int64(0)
	for _, w := range all {
		ran += w.n.Load()
	}
	if ran != int64(total) {
		t.Fatalf("%d runs for %d pushed slots", ran, total)
	}
}

// waitParked waits until n goroutines are parked in q.pop.
func waitParked(t *testing.T, q *readyQueue, n int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		q.mu.Lock()
		w := q.waiting
		q.mu.Unlock()
		if w == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines parked, want %d", w, n)
		}
		time.Sleep(time.Millisecond)
	}
}
