package brokertest

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/job"
)

func testRedelivery(e *env) {
	t := e.t
	a, b := e.open("a"), e.open("b")
	e.publish(a, broker.Message{Topic: "work", ID: "w1", Payload: []byte("p")})
	leased := time.Now() // no later than the lease starts
	d1 := e.fetchOne(a, "work")
	lease := a.Lease()

	// While a's lease lives, b gets nothing; once it expires, b gets the job
	// as the next attempt.
	var d2 *broker.Delivery
	eventually(t, waitLimit+lease, "the unacked job was not redelivered after its lease", func() bool {
		ds := e.fetch(b, []string{"work"}, 10)
		if len(ds) == 0 {
			return false
		}
		if now := time.Now(); now.Before(leased.Add(lease - skew)) {
			t.Fatalf("job delivered to a second consumer %v before the first one's lease expired", leased.Add(lease).Sub(now))
		}
		if len(ds) != 1 {
			t.Fatalf("redelivery: got %s", describe(ds))
		}
		d2 = ds[0]
		return true
	})
	checkJob(t, &d2.Job, &d1.Job)
	if d2.Job.Attempt != 2 {
		t.Errorf("redelivered Attempt = %d, want 2", d2.Job.Attempt)
	}
	// a lost its lease: the job is b's now, and an outcome a reports late
	// is not recorded (b, which runs the job, decides it).
	stale := job.Failure{Error: "late outcome of a lost lease", Reason: job.ReasonPermanent}
	for name, settle := range map[string]func() error{
		"Retry":      func() error { return a.Retry(e.ctx, d1, 0, stale) },
		"Snooze":     func() error { return a.Snooze(e.ctx, d1, 0) },
		"DeadLetter": func() error { return a.DeadLetter(e.ctx, d1, stale) },
	} {
		if err := settle(); !errors.Is(err, broker.ErrNotFound) {
			t.Errorf("%s by the consumer whose lease expired, while another holds the job: %v, want ErrNotFound", name, err)
		}
	}
	e.ack(b, d2)
	e.settled(b, "work", 0, 0)
	e.expectNone(a, []string{"work", job.DeadLetterTopic("work")}, 0,
		"after the redelivered job was acked (a late outcome of the lost lease must not be recorded)")
}

func testExtend(e *env) {
	t := e.t
	a, b := e.open("a"), e.open("b")
	e.publish(a, broker.Message{Topic: "long", Payload: []byte("p")})
	d := e.fetchOne(a, "long")
	lease := a.Lease()
	until := time.Now().Add(5 * lease / 2)

	var wg sync.WaitGroup
	stop := make(chan struct{})
	var stolen []*broker.Delivery
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			ds, err := b.Fetch(e.ctx, []string{"long"}, 10)
			if err != nil {
				t.Errorf("Fetch by the other consumer: %v", err)
				return
			}
			stolen = append(stolen, ds...)
		}
	})
	extends := 0
	for time.Now().Before(until) {
		time.Sleep(lease / 4) // the heartbeat period, not a correctness wait
		if err := a.Extend(e.ctx, d); err != nil {
			t.Errorf("Extend: %v", err)
		}
		extends++
	}
	e.ack(a, d)
	close(stop)
	wg.Wait()
	e.settled(a, "long", 0, 0)
	if len(stolen) > 0 {
		t.Fatalf("a job extended %d times over %v was delivered to another consumer: %s", extends, 5*lease/2, describe(stolen))
	}
}

func testPoison(e *env) {
	t := e.t
	c := e.open("crashy")
	max := e.opts.MaxDeliveries
	dlq := job.DeadLetterTopic("poison")
	e.publish(c, broker.Message{Topic: "poison", ID: "pill", Payload: []byte("p")})

	// The consumer "crashes" on every delivery: it never settles.
	deliveries := 0
	deadline := time.Now().Add(waitLimit + time.Duration(max+1)*c.Lease())
	for {
		if time.Now().After(deadline) {
			t.Fatalf("after %d deliveries the job was not dead-lettered", deliveries)
		}
		ds := e.fetch(c, []string{"poison", dlq}, 10)
		var dl *broker.Delivery
		for _, d := range ds {
			if d.Job.Topic == dlq {
				dl = d
				continue
			}
			deliveries++
			if d.Job.Attempt != deliveries {
				t.Errorf("delivery %d has Attempt %d", deliveries, d.Job.Attempt)
			}
			if deliveries > max {
				t.Fatalf("delivered %d times with MaxDeliveries %d", deliveries, max)
			}
		}
		if dl == nil {
			continue
		}
		if deliveries != max {
			t.Errorf("dead-lettered after %d deliveries, want MaxDeliveries = %d", deliveries, max)
		}
		if dl.Job.ID != "pill" || string(dl.Job.Payload) != "p" {
			t.Errorf("dead letter is %s", describe([]*broker.Delivery{dl}))
		}
		if dl.Job.Attempt != max {
			t.Errorf("dead letter Attempt = %d, want %d (the last delivered attempt)", dl.Job.Attempt, max)
		}
		if dl.Job.Failure == nil {
			t.Fatal("dead letter has no Failure")
		}
		if dl.Job.Failure.Reason != job.ReasonMaxDeliveries || dl.Job.Failure.Origin != "poison" {
			t.Errorf("dead letter Failure = %+v, want Reason %q and Origin %q", *dl.Job.Failure, job.ReasonMaxDeliveries, "poison")
		}
		if want := fmt.Sprintf("delivered %d times with no outcome", max); !strings.Contains(dl.Job.Failure.Error, want) {
			t.Errorf("dead letter Failure.Error = %q, want it to say %q", dl.Job.Failure.Error, want)
		}
		e.ack(c, dl)
		e.settled(c, "poison", 0, 0)
		return
	}
}

// testPoisonCountsDeliveries pins what the poison limit counts: deliveries
// of one entry that ended with no outcome, not the job's attempts. A job at
// attempt 7 (retried six times) whose worker is killed once is delivered
// again and can succeed; a job that lost MaxDeliveries-1 leases and was then
// retried starts a new count.
func testPoisonCountsDeliveries(e *env) {
	t := e.t
	a, b := e.open("a"), e.open("b")
	max := e.opts.MaxDeliveries
	retry := func(d *broker.Delivery) {
		t.Helper()
		if err := a.Retry(e.ctx, d, 0, job.Failure{Error: "flaky", Reason: job.ReasonError, Origin: "late"}); err != nil {
			t.Fatalf("Retry: %v", err)
		}
		e.settled(a, "late", 1, 0)
	}
	// crash leaves d unsettled and returns its redelivery, fetched by b
	// once the lease has expired.
	crash := func(d *broker.Delivery) *broker.Delivery {
		t.Helper()
		r := e.fetchOne(b, "late", job.DeadLetterTopic("late"))
		if r.Job.Topic != "late" {
			t.Fatalf("after a lost lease at attempt %d the job was dead-lettered: %s, %+v", d.Job.Attempt, describe([]*broker.Delivery{r}), r.Job.Failure)
		}
		if r.Job.ID != d.Job.ID || r.Job.Attempt != d.Job.Attempt+1 {
			t.Fatalf("redelivery %s, want %s as attempt %d", describe([]*broker.Delivery{r}), d.Job.ID, d.Job.Attempt+1)
		}
		return r
	}

	e.publish(a, broker.Message{Topic: "late", ID: "seven", Payload: []byte("p")})
	d := e.fetchOne(a, "late")
	for d.Job.Attempt < 7 {
		retry(d)
		d = e.fetchOne(a, "late")
	}
	d = crash(d) // attempt 7's worker is killed: attempt 8 runs
	e.ack(b, d)
	e.settled(a, "late", 0, 0)

	e.publish(a, broker.Message{Topic: "late", ID: "again", Payload: []byte("p")})
	d = e.fetchOne(a, "late")
	for range max - 1 {
		d = crash(d)
	}
	// The entry is one lost lease from the limit; a retry is a new entry.
	if err := b.Retry(e.ctx, d, 0, job.Failure{Error: "flaky", Reason: job.ReasonError, Origin: "late"}); err != nil {
		t.Fatalf("Retry: %v", err)
	}
	e.settled(b, "late", 1, 0)
	d = e.fetchOne(b, "late")
	for range max - 1 {
		d = crash(d)
	}
	e.ack(b, d)
	e.settled(a, "late", 0, 0)
}

func testAckedNotRedelivered(e *env) {
	a, b := e.open("a"), e.open("b")
	e.publishN(a, "done", 3)
	ds := e.fetchN(a, []string{"done"}, 3, 3)
	e.ack(a, ds...)
	e.settled(a, "done", 0, 0)
	e.ack(a, ds...) // a second Ack is harmless
	e.settled(a, "done", 0, 0)
	e.expectNone(b, []string{"done"}, 2*a.Lease(), "acked jobs must never be redelivered")
}
