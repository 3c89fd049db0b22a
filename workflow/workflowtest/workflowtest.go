// Package workflowtest is the conformance suite of batches and chains
// (package workflow) for brokers that implement [broker.BatchStore], in the
// manner of broker/brokertest: a broker's tests call [Run] with a
// [brokertest.Factory].
//
// It drives the broker directly (Fetch, Ack with Delivery.Result set,
// Retry, DeadLetter, expired leases) and checks: the callback of a batch is
// enqueued exactly once with the batch's counts and its members' results;
// members in several topics; a retried member, a member redelivered after
// its lease expired and a member acked twice count once; dead-lettered
// members, the broker's own poison dead-lettering included, count as dead,
// but not the refused dead-lettering of a worker whose lease another took;
// a batch opened twice (a producer or handler run again) counts each
// member once; a child batch holds its parent open; a cancelled batch cancels its
// pending members and never runs its callback; a chain passes results from
// link to link, and a dead-lettered link dead-letters every later link with
// a reason naming it.
package workflowtest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/brokertest"
	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/workflow"
)

// Run runs the suite as subtests of t, each on a fresh queue space made by
// f with a lease of 300ms and a poison limit of 2.
func Run(t *testing.T, f brokertest.Factory) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(newEnv(t, f))
		})
	}
}

var cases = []struct {
	name string
	run  func(*env)
}{
	{"CallbackOnce", testCallbackOnce},
	{"RetriedCountedOnce", testRetried},
	{"RedeliveredCountedOnce", testRedelivered},
	{"StaleDeadLetterNotCounted", testStaleDeadLetter},
	{"DeadCounted", testDead},
	{"PoisonCounted", testPoison},
	{"Nested", testNested},
	{"Cancel", testCancel},
	{"ChainResults", testChainResults},
	{"ChainCrash", testChainCrash},
	{"ChainFailure", testChainFailure},
	{"ReopenCountedOnce", testReopen},
	{"Invalid", testInvalid},
}

// env is one subtest's queue space.
type env struct {
	t    *testing.T
	ctx  context.Context
	opts brokertest.Options
	make func(string) broker.Broker
	b    broker.Broker
	wf   *workflow.Client
}

func newEnv(t *testing.T, f brokertest.Factory) *env {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	opts := brokertest.Options{Lease: 300 * time.Millisecond, MaxDeliveries: 2}
	e := &env{t: t, ctx: ctx, opts: opts, make: f(t, opts)}
	e.b = e.open("w1")
	wf, err := workflow.New(e.b)
	if err != nil {
		t.Fatal(err)
	}
	e.wf = wf
	return e
}

func (e *env) open(consumer string) broker.Broker {
	b := e.make(consumer)
	e.t.Cleanup(func() { _ = b.Close() })
	return b
}

// eventually polls cond until it holds, failing after a deadline.
func (e *env) eventually(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fetchN fetches exactly n deliveries of topics with b.
func (e *env) fetchN(b broker.Broker, n int, topics ...string) []*broker.Delivery {
	e.t.Helper()
	var out []*broker.Delivery
	e.eventually(fmt.Sprintf("%d deliveries of %v (got %d)", n, topics, len(out)), func() bool {
		ds, err := b.Fetch(e.ctx, topics, n-len(out))
		if err != nil {
			e.t.Fatalf("fetch %v: %v", topics, err)
		}
		out = append(out, ds...)
		return len(out) >= n
	})
	return out
}

// expectNone checks that topics hold no ready job, with a few fetches.
func (e *env) expectNone(b broker.Broker, why string, topics ...string) {
	e.t.Helper()
	for range 3 {
		ds, err := b.Fetch(e.ctx, topics, 10)
		if err != nil {
			e.t.Fatalf("fetch %v: %v", topics, err)
		}
		if len(ds) > 0 {
			e.t.Fatalf("%s: got %d deliveries of %v, first %s of %s", why, len(ds), topics, ds[0].Job.ID, ds[0].Job.Topic)
		}
	}
}

// heartbeat extends d's lease every lease/5 until the returned func is
// called, as the server holding a job does.
func (e *env) heartbeat(d *broker.Delivery) (stop func()) {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(e.b.Lease() / 5)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = e.b.Extend(e.ctx, d)
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); <-stopped }) }
}

func (e *env) ack(b broker.Broker, ds ...*broker.Delivery) {
	e.t.Helper()
	if err := b.Ack(e.ctx, ds...); err != nil {
		e.t.Fatalf("ack: %v", err)
	}
}

// ackWithResults acks ds, each with result "r:<ID>".
func (e *env) ackWithResults(b broker.Broker, ds ...*broker.Delivery) {
	e.t.Helper()
	for _, d := range ds {
		d.Result = []byte("r:" + d.Job.ID)
	}
	e.ack(b, ds...)
}

func (e *env) info(id string) *broker.BatchInfo {
	e.t.Helper()
	bi, err := e.wf.BatchInfo(e.ctx, id)
	if err != nil {
		e.t.Fatalf("batch info %s: %v", id, err)
	}
	return bi
}

func (e *env) checkCounts(bi *broker.BatchInfo, state string, succeeded, dead, cancelled, total int) {
	e.t.Helper()
	if bi.State != state || bi.Succeeded != succeeded || bi.Dead != dead || bi.Cancelled != cancelled || bi.Total != total {
		e.t.Fatalf("batch %s: state %s, %d succeeded, %d dead, %d cancelled of %d; want %s, %d, %d, %d of %d",
			bi.ID, bi.State, bi.Succeeded, bi.Dead, bi.Cancelled, bi.Total, state, succeeded, dead, cancelled, total)
	}
}

// sweep runs the broker's sweeper when it has one, which must enqueue no
// second callback.
func (e *env) sweep() {
	e.t.Helper()
	if s, ok := e.b.(interface {
		SweepBatches(context.Context) (int, error)
	}); ok {
		if _, err := s.SweepBatches(e.ctx); err != nil {
			e.t.Fatalf("sweep: %v", err)
		}
	}
}

func (e *env) open3(members int, topics ...string) (string, []broker.Message) {
	e.t.Helper()
	ms := make([]broker.Message, members)
	for i := range ms {
		ms[i] = broker.Message{Topic: topics[i%len(topics)], Payload: []byte(fmt.Sprint(i))}
	}
	id, err := e.wf.OpenBatch(e.ctx, workflow.Batch{Members: ms, Callback: &broker.Message{Topic: "cb", Payload: []byte("done")}})
	if err != nil {
		e.t.Fatalf("open batch: %v", err)
	}
	return id, ms
}

func (e *env) checkCallback(d *broker.Delivery, id string, want workflow.Counts) {
	e.t.Helper()
	if workflow.CallbackOf(&d.Job) != id || string(d.Job.Payload) != "done" {
		e.t.Fatalf("callback %s: batch %q payload %q; want batch %s", d.Job.ID, workflow.CallbackOf(&d.Job), d.Job.Payload, id)
	}
	if got := workflow.CountsOf(&d.Job); got != want {
		e.t.Fatalf("callback counts %+v, want %+v", got, want)
	}
}

func testCallbackOnce(e *env) {
	id, ms := e.open3(6, "a", "b", "c")
	ds := e.fetchN(e.b, 6, "a", "b", "c")
	stop := e.heartbeat(ds[5])
	e.ackWithResults(e.b, ds[:5]...)
	e.expectNone(e.b, "callback before the last member ended", "cb")
	e.checkCounts(e.info(id), broker.BatchOpen, 5, 0, 0, 6)
	stop()
	e.ackWithResults(e.b, ds[5])
	cb := e.fetchN(e.b, 1, "cb")[0]
	e.checkCallback(cb, id, workflow.Counts{Succeeded: 6, Total: 6})
	res, bi, err := e.wf.Results(e.ctx, &cb.Job)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, m := range ms {
		if string(res[m.ID]) != "r:"+m.ID {
			e.t.Fatalf("result of %s: %q", m.ID, res[m.ID])
		}
	}
	e.checkCounts(bi, broker.BatchComplete, 6, 0, 0, 6)
	if bi.CallbackState != broker.CallbackEnqueued || bi.CallbackTopic != "cb" {
		e.t.Fatalf("callback state %s topic %s", bi.CallbackState, bi.CallbackTopic)
	}
	e.ack(e.b, cb)
	e.sweep()
	e.ackWithResults(e.b, ds...) // acked again: nothing counted, nothing enqueued
	e.expectNone(e.b, "a second callback", "cb", "a", "b", "c")
	bi = e.info(id)
	e.checkCounts(bi, broker.BatchComplete, 6, 0, 0, 6)
	if bi.CallbackState != broker.CallbackSucceeded {
		e.t.Fatalf("callback state after its ack %s", bi.CallbackState)
	}
}

func testRetried(e *env) {
	id, _ := e.open3(3, "a")
	ds := e.fetchN(e.b, 3, "a")
	for _, d := range ds[:2] {
		if err := e.b.Retry(e.ctx, d, 0, job.Failure{Error: "transient"}); err != nil {
			e.t.Fatal(err)
		}
	}
	again := e.fetchN(e.b, 2, "a")
	for _, d := range again {
		if d.Job.Attempt != 2 {
			e.t.Fatalf("retried member attempt %d", d.Job.Attempt)
		}
	}
	e.ackWithResults(e.b, append(again, ds[2])...)
	cb := e.fetchN(e.b, 1, "cb")[0]
	e.checkCallback(cb, id, workflow.Counts{Succeeded: 3, Total: 3})
	e.expectNone(e.b, "a second callback", "cb")
}

func testRedelivered(e *env) {
	id, _ := e.open3(2, "a")
	crashed := e.open("w2")
	held := e.fetchN(crashed, 2, "a") // never settled by w2: its lease expires
	_ = crashed.Close()
	ds := e.fetchN(e.b, 2, "a")
	if ds[0].Job.ID != held[0].Job.ID && ds[0].Job.ID != held[1].Job.ID {
		e.t.Fatalf("redelivered %s, not one of the crashed worker's", ds[0].Job.ID)
	}
	e.ackWithResults(e.b, ds...)
	cb := e.fetchN(e.b, 1, "cb")[0]
	e.checkCallback(cb, id, workflow.Counts{Succeeded: 2, Total: 2})
	e.sweep()
	e.expectNone(e.b, "a second callback", "cb")
}

func testDead(e *env) {
	id, _ := e.open3(3, "a", "b")
	ds := e.fetchN(e.b, 3, "a", "b")
	e.ackWithResults(e.b, ds[0])
	if err := e.b.DeadLetter(e.ctx, ds[1], job.Failure{Error: "boom"}); err != nil {
		e.t.Fatal(err)
	}
	if err := e.b.DeadLetter(e.ctx, ds[2], job.Failure{Error: "stop", Reason: job.ReasonCancelled}); err != nil {
		e.t.Fatal(err)
	}
	cb := e.fetchN(e.b, 1, "cb")[0]
	e.checkCallback(cb, id, workflow.Counts{Succeeded: 1, Dead: 1, Cancelled: 1, Total: 3})
	bi := e.info(id)
	if !strings.Contains(bi.Failed, ds[1].Job.ID) || !strings.Contains(bi.Failed, "boom") {
		e.t.Fatalf("failed %q does not name %s and its error", bi.Failed, ds[1].Job.ID)
	}
	if len(bi.Results()) != 1 {
		e.t.Fatalf("results %v, want the acked member's only", bi.Results())
	}
}

func testPoison(e *env) {
	id, _ := e.open3(1, "a")
	for i := range e.opts.MaxDeliveries {
		w := e.open(fmt.Sprintf("crash%d", i))
		e.fetchN(w, 1, "a") // never settled
		_ = w.Close()
	}
	// The next lease expiry dead-letters the member (max-deliveries).
	var cb *broker.Delivery
	e.eventually("the callback after the poison dead letter", func() bool {
		ds, err := e.b.Fetch(e.ctx, []string{"a", "cb"}, 1)
		if err != nil {
			e.t.Fatal(err)
		}
		for _, d := range ds {
			if d.Job.Topic != "cb" {
				e.t.Fatalf("member delivered %d+1 times", e.opts.MaxDeliveries)
			}
			cb = d
		}
		return cb != nil
	})
	e.checkCallback(cb, id, workflow.Counts{Dead: 1, Total: 1})
	if bi := e.info(id); !strings.Contains(bi.Failed, "delivered") {
		e.t.Fatalf("failed %q does not carry the poison error", bi.Failed)
	}
}

func testNested(e *env) {
	parent, _ := e.open3(2, "a")
	ds := e.fetchN(e.b, 2, "a")
	// ds[0]'s handler opens a child batch, then ends.
	child, err := e.wf.OpenChild(e.ctx, &ds[0].Job, workflow.Batch{
		Members:  []broker.Message{{Topic: "c"}, {Topic: "c"}},
		Callback: &broker.Message{Topic: "childcb", Payload: []byte("child")},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.ackWithResults(e.b, ds...)
	bi := e.info(parent)
	e.checkCounts(bi, broker.BatchOpen, 2, 0, 0, 3)
	e.expectNone(e.b, "the parent's callback before the child completed", "cb")
	cs := e.fetchN(e.b, 2, "c")
	e.ackWithResults(e.b, cs[0])
	if err := e.b.DeadLetter(e.ctx, cs[1], job.Failure{Error: "child member failed"}); err != nil {
		e.t.Fatal(err)
	}
	ccb := e.fetchN(e.b, 1, "childcb")[0]
	if workflow.CallbackOf(&ccb.Job) != child || workflow.CountsOf(&ccb.Job) != (workflow.Counts{Succeeded: 1, Dead: 1, Total: 2}) {
		e.t.Fatalf("child callback %v counts %+v", ccb.Job.Headers, workflow.CountsOf(&ccb.Job))
	}
	cb := e.fetchN(e.b, 1, "cb")[0]
	e.checkCallback(cb, parent, workflow.Counts{Succeeded: 2, Dead: 1, Total: 3})
	if bi := e.info(child); bi.Parent != parent {
		e.t.Fatalf("child's parent %q", bi.Parent)
	}
}

func testCancel(e *env) {
	id, _ := e.open3(3, "a")
	running := e.fetchN(e.b, 1, "a")[0]
	stop := e.heartbeat(running) // the running member keeps its lease, as a server's would
	bi, err := e.wf.CancelBatch(e.ctx, id)
	if err != nil {
		e.t.Fatal(err)
	}
	e.checkCounts(bi, broker.BatchCancelled, 0, 0, 2, 3)
	if bi.CallbackState != broker.CallbackSkipped {
		e.t.Fatalf("callback state %s", bi.CallbackState)
	}
	e.expectNone(e.b, "cancelled members", "a")
	if cw, ok := e.b.(broker.CancelWatcher); ok {
		got, err := cw.CancelRequested(e.ctx, running)
		if err != nil || len(got) != 1 {
			e.t.Fatalf("cancel request of the running member: %v %v", got, err)
		}
	}
	// The server dead-letters a cancelled running job.
	stop()
	if err := e.b.DeadLetter(e.ctx, running, job.Failure{Error: "cancelled", Reason: job.ReasonCancelled}); err != nil {
		e.t.Fatal(err)
	}
	e.checkCounts(e.info(id), broker.BatchCancelled, 0, 0, 3, 3)
	e.sweep()
	e.expectNone(e.b, "the callback of a cancelled batch", "cb")
	if a, ok := e.b.(broker.DeadLetterAdmin); ok {
		dls, err := a.DeadLetters(e.ctx, "a", "", 10)
		if err != nil || len(dls) != 3 {
			e.t.Fatalf("dead letters of a: %d %v", len(dls), err)
		}
	}
}

func testChainResults(e *env) {
	links := []broker.Message{{Topic: "l1", Payload: []byte("x")}, {Topic: "l2"}, {Topic: "l3"}}
	ch, err := e.wf.Chain(e.ctx, links...)
	if err != nil {
		e.t.Fatal(err)
	}
	prev := "x"
	for i, topic := range []string{"l1", "l2", "l3"} {
		d := e.fetchN(e.b, 1, "l1", "l2", "l3")[0]
		if d.Job.Topic != topic || d.Job.ID != ch.JobIDs[i] {
			e.t.Fatalf("link %d: got %s of %s, want %s of %s", i+1, d.Job.ID, d.Job.Topic, ch.JobIDs[i], topic)
		}
		if i > 0 {
			got, err := e.wf.Previous(e.ctx, &d.Job)
			if err != nil || string(got) != prev {
				e.t.Fatalf("link %d: previous result %q %v, want %q", i+1, got, err, prev)
			}
		}
		prev = prev + "+" + topic
		d.Result = []byte(prev)
		e.ack(e.b, d)
	}
	e.expectNone(e.b, "a link after the last", "l1", "l2", "l3")
	last := e.info(ch.BatchIDs[2])
	e.checkCounts(last, broker.BatchComplete, 1, 0, 0, 1)
	if string(last.Members[0].Result) != "x+l1+l2+l3" {
		e.t.Fatalf("last result %q", last.Members[0].Result)
	}
}

// chainOf starts a chain of one empty job per topic, in order.
func (e *env) chainOf(topics ...string) *workflow.ChainInfo {
	links := make([]broker.Message, len(topics))
	for i, t := range topics {
		links[i] = broker.Message{Topic: t}
	}
	ch, err := e.wf.Chain(e.ctx, links...)
	if err != nil {
		e.t.Fatal(err)
	}
	return ch
}

// testChainCrash runs a chain of 5 whose third link's worker dies after
// fetching it, and whose fourth link is acked twice (a redelivery after a
// lost reply): the third link runs again elsewhere, every link runs, and
// the last one reads the result built along the whole chain.
func testChainCrash(e *env) {
	topics := []string{"c1", "c2", "c3", "c4", "c5"}
	ch := e.chainOf(topics...)
	prev := ""
	for i, topic := range topics {
		if i == 2 {
			crashed := e.open("w2")
			held := e.fetchN(crashed, 1, topics...)[0] // never settled: its lease expires
			if held.Job.ID != ch.JobIDs[i] {
				e.t.Fatalf("the crashed worker fetched %s, want link 3 %s", held.Job.ID, ch.JobIDs[i])
			}
			_ = crashed.Close()
		}
		d := e.fetchN(e.b, 1, topics...)[0]
		if d.Job.Topic != topic || d.Job.ID != ch.JobIDs[i] {
			e.t.Fatalf("link %d: got %s of %s, want %s of %s", i+1, d.Job.ID, d.Job.Topic, ch.JobIDs[i], topic)
		}
		if i > 0 {
			got, err := e.wf.Previous(e.ctx, &d.Job)
			if err != nil || string(got) != prev {
				e.t.Fatalf("link %d: previous result %q %v, want %q", i+1, got, err, prev)
			}
		}
		prev += topic
		d.Result = []byte(prev)
		e.ack(e.b, d)
		if i == 3 {
			_ = e.b.Ack(e.ctx, d) // a second ack of one delivery counts nothing
		}
	}
	e.expectNone(e.b, "a link after the last, or one run twice", topics...)
	last := e.info(ch.BatchIDs[4])
	e.checkCounts(last, broker.BatchComplete, 1, 0, 0, 1)
	if string(last.Members[0].Result) != "c1c2c3c4c5" {
		e.t.Fatalf("last result %q, want c1c2c3c4c5", last.Members[0].Result)
	}
}

func testChainFailure(e *env) {
	topics := []string{"k1", "k2", "k3", "k4", "k5"}
	ch := e.chainOf(topics...)
	for i := range 2 {
		d := e.fetchN(e.b, 1, topics...)[0]
		if d.Job.Topic != topics[i] {
			e.t.Fatalf("link %d is %s", i+1, d.Job.Topic)
		}
		e.ack(e.b, d)
	}
	d3 := e.fetchN(e.b, 1, topics...)[0]
	if err := e.b.DeadLetter(e.ctx, d3, job.Failure{Error: "permanent", Reason: "permanent"}); err != nil {
		e.t.Fatal(err)
	}
	e.expectNone(e.b, "links after a failed link", topics...)
	a, ok := e.b.(broker.DeadLetterAdmin)
	if !ok {
		e.t.Skip("the broker has no DeadLetterAdmin to read the chain's dead letters")
	}
	want := "k3/" + ch.JobIDs[2]
	for i := 3; i < 5; i++ {
		var dls []broker.DeadLetter
		e.eventually("the dead letter of link "+fmt.Sprint(i+1), func() bool {
			var err error
			dls, err = a.DeadLetters(e.ctx, topics[i], "", 10)
			if err != nil {
				e.t.Fatal(err)
			}
			return len(dls) > 0
		})
		if len(dls) != 1 {
			e.t.Fatalf("link %d: %d dead letters", i+1, len(dls))
		}
		j := dls[0].Job
		if j.ID != ch.JobIDs[i] || j.Failure == nil || j.Failure.Reason != broker.ReasonChainFailed ||
			!strings.Contains(j.Failure.Error, want) || j.Headers[broker.HeaderChainFailed] != want {
			e.t.Fatalf("link %d dead letter: id %s failure %+v header %q; want id %s, reason %s naming %s",
				i+1, j.ID, j.Failure, j.Headers[broker.HeaderChainFailed], ch.JobIDs[i], broker.ReasonChainFailed, want)
		}
	}
	e.checkCounts(e.info(ch.BatchIDs[4]), broker.BatchComplete, 0, 1, 0, 1)
	e.sweep()
	if dls, _ := a.DeadLetters(e.ctx, "k5", "", 10); len(dls) != 1 {
		e.t.Fatalf("after a sweep: %d dead letters of the last link", len(dls))
	}
}

func testInvalid(e *env) {
	for name, bt := range map[string]workflow.Batch{
		"no members":     {Callback: &broker.Message{Topic: "cb"}},
		"no topic":       {Members: []broker.Message{{}}},
		"unique":         {Members: []broker.Message{{Topic: "a", UniqueKey: "k"}}},
		"braces":         {ID: "a{b}", Members: []broker.Message{{Topic: "a"}}},
		"callback":       {Members: []broker.Message{{Topic: "a"}}, Callback: &broker.Message{}},
		"unknown parent": {Parent: "nope", Members: []broker.Message{{Topic: "a"}}},
	} {
		_, err := e.wf.OpenBatch(e.ctx, bt)
		if !errors.Is(err, broker.ErrInvalidMessage) && !errors.Is(err, broker.ErrNotFound) {
			e.t.Errorf("%s: %v, want ErrInvalidMessage or ErrNotFound", name, err)
		}
	}
	e.expectNone(e.b, "a member of an invalid batch", "a")
	if _, err := e.wf.BatchInfo(e.ctx, "nope"); !errors.Is(err, broker.ErrNotFound) {
		e.t.Errorf("info of an unknown batch: %v", err)
	}
}

func testReopen(e *env) {
	bt := workflow.Batch{ID: "again", Members: []broker.Message{{Topic: "a"}, {Topic: "a"}}, Callback: &broker.Message{Topic: "cb", Payload: []byte("done")}}
	for range 2 {
		if _, err := e.wf.OpenBatch(e.ctx, bt); err != nil {
			e.t.Fatal(err)
		}
	}
	ds := e.fetchN(e.b, 4, "a") // each member published twice
	if ds[0].Job.ID != "again.1" || ds[1].Job.ID != "again.2" {
		e.t.Fatalf("member IDs %s %s, want again.1 again.2", ds[0].Job.ID, ds[1].Job.ID)
	}
	e.ackWithResults(e.b, ds...)
	cb := e.fetchN(e.b, 1, "cb")[0]
	e.checkCallback(cb, "again", workflow.Counts{Succeeded: 2, Total: 2})
	// Opened again once complete: nothing is published.
	if _, err := e.wf.OpenBatch(e.ctx, bt); err != nil {
		e.t.Fatal(err)
	}
	e.expectNone(e.b, "members of a complete batch opened again", "a", "cb")
	e.checkCounts(e.info("again"), broker.BatchComplete, 2, 0, 0, 2)
}

func testStaleDeadLetter(e *env) {
	id, _ := e.open3(1, "a")
	slow := e.open("slow")
	lost := e.fetchN(slow, 1, "a")[0] // its lease expires
	d := e.fetchN(e.b, 1, "a")[0]
	stop := e.heartbeat(d)
	if err := slow.DeadLetter(e.ctx, lost, job.Failure{Error: "too late"}); !errors.Is(err, broker.ErrNotFound) {
		e.t.Fatalf("dead letter by a worker that lost the lease: %v, want ErrNotFound", err)
	}
	e.checkCounts(e.info(id), broker.BatchOpen, 0, 0, 0, 1)
	stop()
	e.ackWithResults(e.b, d)
	cb := e.fetchN(e.b, 1, "cb")[0]
	e.checkCallback(cb, id, workflow.Counts{Succeeded: 1, Total: 1})
}
