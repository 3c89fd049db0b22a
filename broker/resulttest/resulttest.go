// Package resulttest is the conformance suite for brokers that keep job
// results and progress: [broker.JobReader], [broker.ProgressRecorder] and
// [broker.ProgressReader]. A broker's tests call [Run] with a factory:
//
//	func TestResults(t *testing.T) {
//		resulttest.Run(t, func(t *testing.T) broker.Broker {
//			b := memory.New(&memory.Options{FetchWait: 10 * time.Millisecond})
//			t.Cleanup(func() { b.Close() })
//			return b
//		})
//	}
//
// It checks that a result set on a delivery (Delivery.Result) is stored by
// Ack and read back by JobState, with the attempt that succeeded; that a
// job acknowledged without a result, or whose ack came after another
// settle, is not reported as succeeded; the states delayed, queued,
// running and dead; and that progress is reported while its delivery runs,
// and only then. Expiry of results depends on the broker's clock and is
// left to the broker's own tests.
package resulttest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/job"
)

// Factory returns a new, empty broker for one test, closed when the test
// ends. It must implement broker.JobReader, broker.ProgressRecorder and
// broker.ProgressReader, and fetch an empty topic within a second.
type Factory func(t *testing.T) broker.Broker

// Broker is what the suite needs of a broker.
type Broker interface {
	broker.Broker
	broker.JobReader
	broker.ProgressRecorder
	broker.ProgressReader
}

// Run runs the suite, each case as a parallel subtest with a broker of its
// own.
func Run(t *testing.T, f Factory) {
	t.Helper()
	cases := []struct {
		name string
		fn   func(t *testing.T, b Broker)
	}{
		{"ResultStoredAtAck", testResultStored},
		{"AckWithoutResultNotKept", testNoResult},
		{"RetriedThenSucceeded", testRetried},
		{"StaleAckStoresNothing", testStaleAck},
		{"UniqueJobWithResult", testUnique},
		{"States", testStates},
		{"Progress", testProgress},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b, ok := f(t).(Broker)
			if !ok {
				t.Fatal("resulttest: the broker does not implement broker.JobReader, broker.ProgressRecorder and broker.ProgressReader")
			}
			c.fn(t, b)
		})
	}
}

var ctx = context.Background()

// publish publishes m and returns the job's ID.
func publish(t *testing.T, b Broker, m broker.Message) string {
	t.Helper()
	id, err := b.Publish(ctx, m)
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	return id
}

// fetch fetches one delivery of topic, waiting up to 5s.
func fetch(t *testing.T, b Broker, topic string) *broker.Delivery {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		ds, err := b.Fetch(ctx, []string{topic}, 1)
		if err != nil {
			t.Fatalf("Fetch: %v", err)
		}
		if len(ds) == 1 {
			return ds[0]
		}
	}
	t.Fatalf("no job fetched from %q", topic)
	return nil
}

// state returns JobState of id, failing the test on an error.
func state(t *testing.T, b Broker, topic, id string) *broker.JobState {
	t.Helper()
	js, err := b.JobState(ctx, topic, id)
	if err != nil {
		t.Fatalf("JobState(%q, %q): %v", topic, id, err)
	}
	if js.ID != id || js.Topic != topic {
		t.Fatalf("JobState(%q, %q) names job %q of %q", topic, id, js.ID, js.Topic)
	}
	return js
}

// notFound asserts that JobState of id reports broker.ErrNotFound.
func notFound(t *testing.T, b Broker, topic, id string) error {
	t.Helper()
	js, err := b.JobState(ctx, topic, id)
	if !errors.Is(err, broker.ErrNotFound) {
		t.Fatalf("JobState(%q, %q) = %+v, %v; want an error matching broker.ErrNotFound", topic, id, js, err)
	}
	return err
}

func testResultStored(t *testing.T, b Broker) {
	before := time.Now().Add(-time.Minute)
	id := publish(t, b, broker.Message{Topic: "steps", Payload: []byte(`{"n":1}`)})
	d := fetch(t, b, "steps")
	d.Result = []byte(`{"answer":42}`)
	if err := b.Ack(ctx, d); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	js := state(t, b, "steps", id)
	if js.State != broker.StateSucceeded || string(js.Result) != `{"answer":42}` || js.Attempt != 1 {
		t.Fatalf("state %q, result %q, attempt %d; want succeeded, the result, attempt 1", js.State, js.Result, js.Attempt)
	}
	if js.FinishedAt.Before(before) || !js.ExpiresAt.After(js.FinishedAt) {
		t.Fatalf("finished at %v, expires at %v: want a recent finish and an expiry after it", js.FinishedAt, js.ExpiresAt)
	}
	if js.EnqueuedAt.IsZero() {
		t.Fatal("EnqueuedAt is zero")
	}
	if js.Progress != nil || js.Failure != nil {
		t.Fatalf("progress %+v, failure %+v on a succeeded job", js.Progress, js.Failure)
	}

	// An empty result is a result too.
	id2 := publish(t, b, broker.Message{Topic: "steps", Payload: []byte(`{}`)})
	d = fetch(t, b, "steps")
	d.Result = []byte{}
	if err := b.Ack(ctx, d); err != nil {
		t.Fatal(err)
	}
	if js := state(t, b, "steps", id2); js.State != broker.StateSucceeded || len(js.Result) != 0 {
		t.Fatalf("empty result: state %q, result %q", js.State, js.Result)
	}
}

func testNoResult(t *testing.T, b Broker) {
	id := publish(t, b, broker.Message{Topic: "steps", Payload: []byte(`x`)})
	d := fetch(t, b, "steps")
	if err := b.Ack(ctx, d); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	err := notFound(t, b, "steps", id)
	if !strings.Contains(err.Error(), "without a result is not kept") {
		t.Fatalf("error %q does not say that jobs acked without a result are not kept", err)
	}
	notFound(t, b, "steps", "no-such-job")
	notFound(t, b, "never-used", id)
}

func testRetried(t *testing.T, b Broker) {
	id := publish(t, b, broker.Message{Topic: "steps", Payload: []byte(`x`)})
	d := fetch(t, b, "steps")
	d.Result = []byte(`"first"`) // recorded, then the attempt failed
	if err := b.Retry(ctx, d, 0, job.Failure{Error: "boom", Reason: job.ReasonError}); err != nil {
		t.Fatalf("Retry: %v", err)
	}
	if js := state(t, b, "steps", id); js.State == broker.StateSucceeded {
		t.Fatalf("a retried job reads as succeeded: %+v", js)
	}
	d = fetch(t, b, "steps")
	if d.Job.Attempt != 2 {
		t.Fatalf("attempt %d, want 2", d.Job.Attempt)
	}
	d.Result = []byte(`"second"`)
	if err := b.Ack(ctx, d); err != nil {
		t.Fatal(err)
	}
	js := state(t, b, "steps", id)
	if js.State != broker.StateSucceeded || string(js.Result) != `"second"` || js.Attempt != 2 {
		t.Fatalf("state %q, result %q, attempt %d; want succeeded, \"second\", 2", js.State, js.Result, js.Attempt)
	}
}

func testStaleAck(t *testing.T, b Broker) {
	id := publish(t, b, broker.Message{Topic: "steps", Payload: []byte(`x`)})
	d := fetch(t, b, "steps")
	if err := b.DeadLetter(ctx, d, job.Failure{Error: "bad", Reason: job.ReasonPermanent}); err != nil {
		t.Fatal(err)
	}
	d.Result = []byte(`"late"`)
	if err := b.Ack(ctx, d); err != nil {
		t.Fatalf("a second settle by Ack: %v", err)
	}
	js := state(t, b, "steps", id)
	if js.State != broker.StateDead || js.Result != nil {
		t.Fatalf("state %q, result %q; want dead and no result: an ack after another settle stores nothing", js.State, js.Result)
	}

	// A second ack of an acked job keeps the first result.
	id = publish(t, b, broker.Message{Topic: "steps", Payload: []byte(`y`)})
	d = fetch(t, b, "steps")
	d.Result = []byte(`"one"`)
	if err := b.Ack(ctx, d); err != nil {
		t.Fatal(err)
	}
	d.Result = []byte(`"two"`)
	if err := b.Ack(ctx, d); err != nil {
		t.Fatal(err)
	}
	if js := state(t, b, "steps", id); string(js.Result) != `"one"` {
		t.Fatalf("result %q after a second ack, want the first", js.Result)
	}
}

func testUnique(t *testing.T, b Broker) {
	m := broker.Message{Topic: "steps", Payload: []byte(`x`), UniqueKey: "k"}
	id := publish(t, b, m)
	d := fetch(t, b, "steps")
	d.Result = []byte(`"done"`)
	if err := b.Ack(ctx, d); err != nil {
		t.Fatal(err)
	}
	if js := state(t, b, "steps", id); js.State != broker.StateSucceeded || string(js.Result) != `"done"` {
		t.Fatalf("state %q, result %q", js.State, js.Result)
	}
	// The ack released the key.
	id2, err := b.Publish(ctx, m)
	if err != nil || id2 == id {
		t.Fatalf("Publish after the ack = %q, %v: the key was not released", id2, err)
	}
}

func testStates(t *testing.T, b Broker) {
	delayed := publish(t, b, broker.Message{Topic: "steps", Payload: []byte(`d`), Delay: time.Hour})
	js := state(t, b, "steps", delayed)
	if js.State != broker.StateDelayed || js.Attempt != 1 || js.Due.Before(time.Now().Add(30*time.Minute)) {
		t.Fatalf("delayed job: state %q, attempt %d, due %v", js.State, js.Attempt, js.Due)
	}

	queued := publish(t, b, broker.Message{Topic: "steps", Payload: []byte(`q`)})
	js = state(t, b, "steps", queued)
	if js.State != broker.StateQueued || js.Attempt != 1 || js.Receipt == "" {
		t.Fatalf("queued job: state %q, attempt %d, receipt %q", js.State, js.Attempt, js.Receipt)
	}

	d := fetch(t, b, "steps")
	js = state(t, b, "steps", queued)
	if js.State != broker.StateRunning || js.Attempt != 1 || js.Receipt != d.Receipt {
		t.Fatalf("running job: state %q, attempt %d, receipt %q (delivery's %q)", js.State, js.Attempt, js.Receipt, d.Receipt)
	}

	if err := b.Retry(ctx, d, time.Hour, job.Failure{Error: "boom", Reason: job.ReasonError}); err != nil {
		t.Fatal(err)
	}
	js = state(t, b, "steps", queued)
	if js.State != broker.StateDelayed || js.Attempt != 2 || js.Failure == nil || js.Failure.Error != "boom" {
		t.Fatalf("retried job: state %q, attempt %d, failure %+v", js.State, js.Attempt, js.Failure)
	}

	dead := publish(t, b, broker.Message{Topic: "other", Payload: []byte(`x`)})
	d = fetch(t, b, "other")
	if err := b.DeadLetter(ctx, d, job.Failure{Error: "bad", Reason: job.ReasonPermanent}); err != nil {
		t.Fatal(err)
	}
	js = state(t, b, "other", dead)
	if js.State != broker.StateDead || js.Failure == nil || js.Failure.Reason != job.ReasonPermanent || js.FinishedAt.IsZero() {
		t.Fatalf("dead job: state %q, failure %+v, finished %v", js.State, js.Failure, js.FinishedAt)
	}
}

func testProgress(t *testing.T, b Broker) {
	id := publish(t, b, broker.Message{Topic: "steps", Payload: []byte(`x`)})
	d := fetch(t, b, "steps")
	if js := state(t, b, "steps", id); js.Progress != nil {
		t.Fatalf("progress %+v before any was recorded", js.Progress)
	}
	at := time.UnixMilli(time.Now().UnixMilli())
	if err := b.RecordProgress(ctx, broker.ProgressUpdate{Delivery: d, Progress: broker.Progress{Fraction: 0.25, Message: "planning", At: at}}); err != nil {
		t.Fatalf("RecordProgress: %v", err)
	}
	if err := b.RecordProgress(ctx, broker.ProgressUpdate{Delivery: d, Progress: broker.Progress{Fraction: 0.5, Message: "step 2 of 4", At: at}}); err != nil {
		t.Fatalf("RecordProgress: %v", err)
	}
	js := state(t, b, "steps", id)
	want := broker.Progress{Fraction: 0.5, Message: "step 2 of 4", At: at}
	if js.State != broker.StateRunning || js.Progress == nil || !sameProgress(*js.Progress, want) {
		t.Fatalf("state %q, progress %+v; want running, %+v", js.State, js.Progress, want)
	}
	ps, err := b.ProgressOf(ctx, "steps", []string{d.Receipt, "0-1"})
	if err != nil {
		t.Fatalf("ProgressOf: %v", err)
	}
	if len(ps) != 1 || !sameProgress(ps[d.Receipt], want) {
		t.Fatalf("ProgressOf = %+v, want only %s: %+v", ps, d.Receipt, want)
	}

	// The next attempt starts without the progress of the one before.
	if err := b.Retry(ctx, d, 0, job.Failure{Error: "boom"}); err != nil {
		t.Fatal(err)
	}
	d = fetch(t, b, "steps")
	if js := state(t, b, "steps", id); js.State != broker.StateRunning || js.Progress != nil {
		t.Fatalf("next attempt: state %q, progress %+v; want running, none", js.State, js.Progress)
	}
	if err := b.RecordProgress(ctx, broker.ProgressUpdate{Delivery: d, Progress: broker.Progress{Fraction: 1, At: at}}); err != nil {
		t.Fatal(err)
	}
	d.Result = []byte(`1`)
	if err := b.Ack(ctx, d); err != nil {
		t.Fatal(err)
	}
	if js := state(t, b, "steps", id); js.State != broker.StateSucceeded || js.Progress != nil {
		t.Fatalf("after the ack: state %q, progress %+v; want succeeded, none", js.State, js.Progress)
	}
}

func sameProgress(a, b broker.Progress) bool {
	return a.Fraction == b.Fraction && a.Message == b.Message && a.At.Equal(b.At)
}
