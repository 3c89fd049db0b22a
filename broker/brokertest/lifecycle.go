package brokertest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/job"
)

func testConcurrent(e *env) {
	t := e.t
	const (
		publishers = 4
		perPub     = 250
		consumers  = 4
		total      = publishers * perPub
	)
	topics := []string{"conc-a", "conc-b"}
	var (
		mu     sync.Mutex
		seen   = make(map[string]int, total)
		dups   []string // delivered twice while the first lease lived
		redone int      // redelivered after an expired lease (allowed)
	)
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	var wg sync.WaitGroup
	for c := range consumers {
		b := e.open(fmt.Sprintf("consumer-%d", c))
		wg.Go(func() {
			for ctx.Err() == nil {
				ds, err := b.Fetch(ctx, topics, 16)
				if err != nil {
					if ctx.Err() == nil {
						t.Errorf("Fetch: %v", err)
					}
					return
				}
				mu.Lock()
				for _, d := range ds {
					key := string(d.Job.Payload)
					seen[key]++
					if seen[key] > 1 {
						if d.Job.Attempt == 1 {
							dups = append(dups, key)
						} else {
							redone++
						}
					}
				}
				mu.Unlock()
				if err := b.Ack(context.WithoutCancel(ctx), ds...); err != nil {
					t.Errorf("Ack: %v", err)
				}
			}
		})
	}
	var pubs sync.WaitGroup
	for p := range publishers {
		b := e.open(fmt.Sprintf("publisher-%d", p))
		pubs.Go(func() {
			for i := 0; i < perPub; {
				if i%50 == 0 { // mix batches with single publishes
					batch := make([]broker.Message, 10)
					for k := range batch {
						batch[k] = broker.Message{Topic: topics[(i+k)%2], Payload: fmt.Appendf(nil, "p%d-%d", p, i+k)}
					}
					if _, err := b.PublishBatch(ctx, batch); err != nil {
						t.Errorf("PublishBatch: %v", err)
						return
					}
					i += len(batch)
					continue
				}
				if _, err := b.Publish(ctx, broker.Message{Topic: topics[i%2], Payload: fmt.Appendf(nil, "p%d-%d", p, i)}); err != nil {
					t.Errorf("Publish: %v", err)
					return
				}
				i++
			}
		})
	}
	pubs.Wait()
	eventually(t, waitLimit, fmt.Sprintf("not every one of %d jobs was delivered", total), func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == total
	})
	cancel()
	wg.Wait()
	for p := range publishers {
		for i := range perPub {
			if key := fmt.Sprintf("p%d-%d", p, i); seen[key] == 0 {
				t.Errorf("job %s lost", key)
			}
		}
	}
	if len(seen) != total {
		t.Errorf("delivered %d distinct jobs, want %d", len(seen), total)
	}
	if len(dups) > 0 {
		t.Errorf("%d jobs delivered twice under a live lease, e.g. %q", len(dups), dups[0])
	}
	if redone > 0 {
		t.Logf("%d redeliveries after an expired lease (allowed, but the lease should be long enough here)", redone)
	}
}

func testCloseUnblocksFetch(e *env) {
	t := e.t
	b := e.open("closing")
	errc := make(chan error, 1)
	go func() {
		// Loop as a server would: an empty batch only means the wait ended.
		for {
			ds, err := b.Fetch(e.ctx, []string{"idle"}, 1)
			if err != nil || len(ds) > 0 {
				errc <- err
				return
			}
		}
	}()
	time.Sleep(50 * time.Millisecond) // let Fetch block; correct either way
	if err := b.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	select {
	case err := <-errc:
		if !isClosedOrCtx(err) {
			t.Errorf("Fetch interrupted by Close returned %v, want ErrClosed", err)
		}
	case <-time.After(waitLimit):
		t.Fatalf("Fetch still blocked %v after Close", waitLimit)
	}
}

func testMethodsAfterClose(e *env) {
	t := e.t
	b := e.open("closed")
	e.publishN(b, "c", 1)
	d := e.fetchOne(b, "c")
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ctx := e.ctx
	calls := []struct {
		name string
		call func() error
	}{
		{"Publish", func() error { _, err := b.Publish(ctx, broker.Message{Topic: "c"}); return err }},
		{"PublishBatch", func() error { _, err := b.PublishBatch(ctx, []broker.Message{{Topic: "c"}}); return err }},
		{"Fetch", func() error { _, err := b.Fetch(ctx, []string{"c"}, 1); return err }},
		{"Ack", func() error { return b.Ack(ctx, d) }},
		{"Retry", func() error { return b.Retry(ctx, d, 0, job.Failure{Error: "x"}) }},
		{"Snooze", func() error { return b.Snooze(ctx, d, 0) }},
		{"DeadLetter", func() error { return b.DeadLetter(ctx, d, job.Failure{Error: "x"}) }},
		{"Extend", func() error { return b.Extend(ctx, d) }},
	}
	for _, c := range calls {
		if err := c.call(); !errors.Is(err, broker.ErrClosed) {
			t.Errorf("%s after Close: err = %v, want ErrClosed", c.name, err)
		}
	}
	// The unsettled job is still there for another consumer.
	other := e.open("other")
	d2 := e.fetchOne(other, "c")
	if d2.Job.ID != d.Job.ID {
		t.Errorf("after Close the other consumer got %s, want %s", d2.Job.ID, d.Job.ID)
	}
	e.ack(other, d2)
}

func testFetchCancelled(e *env) {
	t := e.t
	b := e.open("c1")
	done, cancel := context.WithCancel(e.ctx)
	cancel()
	if _, err := b.Fetch(done, []string{"idle"}, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("Fetch with a cancelled context: err = %v, want context.Canceled", err)
	}

	ctx, cancel := context.WithCancel(e.ctx)
	errc := make(chan error, 1)
	go func() {
		// Loop as a server would: an empty batch is not an answer to cancel.
		for {
			ds, err := b.Fetch(ctx, []string{"idle"}, 1)
			if err != nil || len(ds) > 0 {
				errc <- err
				return
			}
		}
	}()
	time.Sleep(50 * time.Millisecond) // let Fetch block; correct either way
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Fetch after cancel: err = %v, want context.Canceled", err)
		}
	case <-time.After(waitLimit):
		t.Fatalf("Fetch did not return %v after its context was cancelled", waitLimit)
	}
}
