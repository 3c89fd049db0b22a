package brokertest

import (
	"errors"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/job"
)

// fetchAfter fetches one job of topic and fails if it comes before due.
func (e *env) fetchAfter(b broker.Broker, due time.Time, topic string) *broker.Delivery {
	e.t.Helper()
	d := e.fetchOne(b, topic)
	if now := time.Now(); now.Before(due.Add(-skew)) {
		e.t.Errorf("%s/%s delivered %v before due", d.Job.Topic, d.Job.ID, due.Sub(now))
	}
	return d
}

func testRetry(e *env) {
	t := e.t
	b := e.open("c1")
	e.publish(b, broker.Message{Topic: "flaky", ID: "r1", Payload: []byte("p"), Headers: map[string]string{"h": "1"}})
	d1 := e.fetchOne(b, "flaky")
	first := d1.Job

	delay := b.Lease()
	f1 := job.Failure{Error: "boom", Reason: job.ReasonError, Origin: "flaky", Handler: "flaky-handler", At: time.Now()}
	retried := time.Now()
	if err := b.Retry(e.ctx, d1, delay, f1); err != nil {
		t.Fatalf("Retry: %v", err)
	}
	e.settled(b, "flaky", 1, 0)
	d2 := e.fetchAfter(b, retried.Add(delay), "flaky")
	checkJob(t, &d2.Job, &first)
	if d2.Job.Attempt != 2 {
		t.Errorf("after Retry: Attempt = %d, want 2", d2.Job.Attempt)
	}
	checkFailure(t, d2.Job.Failure, f1)

	// Without delay the retry is ready at once, and attempts keep counting.
	f2 := job.Failure{Error: "boom again", Reason: job.ReasonError, Origin: "flaky", At: time.Now()}
	if err := b.Retry(e.ctx, d2, 0, f2); err != nil {
		t.Fatalf("Retry: %v", err)
	}
	e.settled(b, "flaky", 1, 0)
	d3 := e.fetchOne(b, "flaky")
	checkJob(t, &d3.Job, &first)
	if d3.Job.Attempt != 3 {
		t.Errorf("after two Retries: Attempt = %d, want 3", d3.Job.Attempt)
	}
	checkFailure(t, d3.Job.Failure, f2)

	// The settled delivery cannot be settled again.
	if err := b.Retry(e.ctx, d2, 0, f2); err == nil {
		t.Error("Retry of an already retried delivery: nil error")
	}
	e.ack(b, d3)
	e.settled(b, "flaky", 0, 0)
	e.expectNone(b, []string{"flaky"}, 0, "after Ack of the retried job")
}

func testSnooze(e *env) {
	t := e.t
	b := e.open("c1")
	e.publish(b, broker.Message{Topic: "limited", Payload: []byte("p")})
	d1 := e.fetchOne(b, "limited")
	first := d1.Job
	delay := b.Lease()
	snoozed := time.Now()
	if err := b.Snooze(e.ctx, d1, delay); err != nil {
		t.Fatalf("Snooze: %v", err)
	}
	e.settled(b, "limited", 1, 0)
	d2 := e.fetchAfter(b, snoozed.Add(delay), "limited")
	checkJob(t, &d2.Job, &first)
	if d2.Job.Attempt != 1 {
		t.Errorf("after Snooze: Attempt = %d, want 1 (a snooze spends no attempt)", d2.Job.Attempt)
	}
	if d2.Job.Failure != nil {
		t.Errorf("after Snooze: Failure = %+v, want nil", d2.Job.Failure)
	}
	// A snooze after a retry keeps the retried attempt.
	if err := b.Retry(e.ctx, d2, 0, job.Failure{Error: "e", Reason: job.ReasonError, Origin: "limited"}); err != nil {
		t.Fatalf("Retry: %v", err)
	}
	e.settled(b, "limited", 1, 0)
	d3 := e.fetchOne(b, "limited")
	if err := b.Snooze(e.ctx, d3, 0); err != nil {
		t.Fatalf("Snooze: %v", err)
	}
	e.settled(b, "limited", 1, 0)
	d4 := e.fetchOne(b, "limited")
	if d4.Job.Attempt != 2 {
		t.Errorf("Retry then Snooze: Attempt = %d, want 2", d4.Job.Attempt)
	}
	e.ack(b, d4)
	e.settled(b, "limited", 0, 0)
}

func testDeadLetter(e *env) {
	t := e.t
	b := e.open("c1")
	dlq := job.DeadLetterTopic("payments")
	e.publish(b, broker.Message{Topic: "payments", ID: "pay-1", Payload: []byte(`{"amount":5}`), Headers: map[string]string{"tenant": "t1"}})
	d1 := e.fetchOne(b, "payments")
	first := d1.Job
	// One retry first, so the dead letter has a later attempt but the first
	// enqueue time.
	if err := b.Retry(e.ctx, d1, 0, job.Failure{Error: "flaky", Reason: job.ReasonError, Origin: "payments"}); err != nil {
		t.Fatalf("Retry: %v", err)
	}
	e.settled(b, "payments", 1, 0)
	d2 := e.fetchOne(b, "payments")
	f := job.Failure{Error: "card declined", Reason: job.ReasonPermanent, Handler: "charge", Origin: "payments", At: time.Now(),
		Stack: "goroutine 7 [running]:\nmain.charge(...)\n\t/src/charge.go:12 +0x1d"}
	if err := b.DeadLetter(e.ctx, d2, f); err != nil {
		t.Fatalf("DeadLetter: %v", err)
	}
	e.settled(b, "payments", 0, 1)
	dl := e.fetchOne(b, dlq)
	want := first
	want.Topic = dlq
	checkJob(t, &dl.Job, &want)
	if dl.Job.Attempt != 2 {
		t.Errorf("dead letter Attempt = %d, want 2 (the attempt that failed)", dl.Job.Attempt)
	}
	checkFailure(t, dl.Job.Failure, f)
	e.expectNone(b, []string{"payments"}, 0, "origin topic after DeadLetter")
	e.ack(b, dl)
	e.settled(b, "payments", 0, 0)
	e.expectNone(b, []string{dlq}, 0, "dead-letter topic after Ack")
	if err := b.DeadLetter(e.ctx, d2, f); err == nil {
		t.Error("DeadLetter of an already dead-lettered delivery: nil error")
	}
}

// testJobLimits checks that a job's own MaxAttempts and Timeout travel with
// it: publish, fetch, a delayed retry, a snooze, dead-letter and replay.
// Values outside their bounds are refused at publication.
func testJobLimits(e *env) {
	t := e.t
	b := e.open("c1")
	const maxAttempts, timeout = 7, 1500 * time.Millisecond
	check := func(where string, j *job.Job) {
		t.Helper()
		if j.MaxAttempts != maxAttempts || j.Timeout != timeout {
			t.Errorf("%s: MaxAttempts %d, Timeout %v, want %d, %v", where, j.MaxAttempts, j.Timeout, maxAttempts, timeout)
		}
	}
	for _, m := range []broker.Message{
		{Topic: "limits", MaxAttempts: -1},
		{Topic: "limits", MaxAttempts: job.MaxAttempt + 1},
		{Topic: "limits", Timeout: -time.Second},
		{Topic: "limits", Timeout: broker.MaxTimeout + time.Millisecond},
	} {
		if _, err := b.Publish(e.ctx, m); !errors.Is(err, broker.ErrInvalidMessage) {
			t.Errorf("Publish with MaxAttempts %d, Timeout %v: %v, want ErrInvalidMessage", m.MaxAttempts, m.Timeout, err)
		}
		if _, err := b.PublishBatch(e.ctx, []broker.Message{m}); !errors.Is(err, broker.ErrInvalidMessage) {
			t.Errorf("PublishBatch with MaxAttempts %d, Timeout %v: %v, want ErrInvalidMessage", m.MaxAttempts, m.Timeout, err)
		}
	}
	e.settled(b, "limits", 0, 0)

	e.publish(b, broker.Message{Topic: "limits", ID: "lim", Payload: []byte("p"), MaxAttempts: maxAttempts, Timeout: timeout})
	d := e.fetchOne(b, "limits")
	check("published", &d.Job)
	if err := b.Retry(e.ctx, d, time.Millisecond, job.Failure{Error: "e", Reason: job.ReasonError, Origin: "limits"}); err != nil {
		t.Fatalf("Retry: %v", err)
	}
	e.settled(b, "limits", 1, 0)
	d = e.fetchOne(b, "limits")
	check("retried", &d.Job)
	if err := b.Snooze(e.ctx, d, 0); err != nil {
		t.Fatalf("Snooze: %v", err)
	}
	e.settled(b, "limits", 1, 0)
	d = e.fetchOne(b, "limits")
	check("snoozed", &d.Job)
	if err := b.DeadLetter(e.ctx, d, job.Failure{Error: "dead", Reason: job.ReasonPermanent, Origin: "limits"}); err != nil {
		t.Fatalf("DeadLetter: %v", err)
	}
	e.settled(b, "limits", 0, 1)
	a, ok := b.(broker.DeadLetterAdmin)
	if !ok {
		dl := e.fetchOne(b, job.DeadLetterTopic("limits"))
		check("dead letter", &dl.Job)
		e.ack(b, dl)
		return
	}
	dls := e.deadLetters(a, "limits", 10)
	if len(dls) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dls))
	}
	check("dead letter", &dls[0].Job)
	if n, err := a.ReplayDeadLetters(e.ctx, "limits", nil); err != nil || n != 1 {
		t.Fatalf("ReplayDeadLetters = %d, %v", n, err)
	}
	e.settled(b, "limits", 1, 0)
	d = e.fetchOne(b, "limits")
	check("replayed", &d.Job)
	if d.Job.Attempt != 1 {
		t.Errorf("replayed Attempt = %d, want 1", d.Job.Attempt)
	}
	e.ack(b, d)
	e.settled(b, "limits", 0, 0)
}
