package brokertest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/job"
)

// waitLimit bounds every wait of the suite: a broker that has not done what
// it should by then is broken (or hung), not slow.
const waitLimit = 15 * time.Second

// skew tolerates the millisecond resolution of stores that keep due times
// in whole milliseconds.
const skew = 2 * time.Millisecond

// eventually polls cond until it holds, failing t after timeout.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// publish publishes m and returns its ID.
func (e *env) publish(b broker.Broker, m broker.Message) string {
	e.t.Helper()
	id, err := b.Publish(e.ctx, e.ordered(m))
	if err != nil {
		e.t.Fatalf("Publish(%q): %v", m.Topic, err)
	}
	if id == "" {
		e.t.Fatalf("Publish(%q) returned an empty ID", m.Topic)
	}
	return id
}

// publishN publishes n jobs to topic with payloads "<topic>-<i>" and returns
// their IDs.
func (e *env) publishN(b broker.Broker, topic string, n int) []string {
	e.t.Helper()
	ids := make([]string, n)
	for i := range n {
		ids[i] = e.publish(b, broker.Message{Topic: topic, Payload: fmt.Appendf(nil, "%s-%d", topic, i)})
	}
	return ids
}

// fetch calls Fetch once and fails on error or on more than max jobs.
func (e *env) fetch(b broker.Broker, topics []string, max int) []*broker.Delivery {
	e.t.Helper()
	ds, err := b.Fetch(e.ctx, topics, max)
	if err != nil {
		e.t.Fatalf("Fetch(%q, %d): %v", topics, max, err)
	}
	if len(ds) > max {
		e.t.Fatalf("Fetch(%q, %d) returned %d jobs", topics, max, len(ds))
	}
	for _, d := range ds {
		if d == nil {
			e.t.Fatalf("Fetch(%q, %d) returned a nil delivery", topics, max)
		}
	}
	return ds
}

// fetchN fetches until it has n jobs, max per call, failing after waitLimit
// or when more than n come.
func (e *env) fetchN(b broker.Broker, topics []string, n, max int) []*broker.Delivery {
	e.t.Helper()
	var out []*broker.Delivery
	deadline := time.Now().Add(waitLimit)
	for len(out) < n {
		if time.Now().After(deadline) {
			e.t.Fatalf("fetched %d of %d jobs from %q in %v", len(out), n, topics, waitLimit)
		}
		out = append(out, e.fetch(b, topics, max)...)
	}
	if len(out) > n {
		e.t.Fatalf("fetched %d jobs from %q, want %d: %v", len(out), topics, n, describe(out))
	}
	return out
}

// fetchOne fetches exactly one job.
func (e *env) fetchOne(b broker.Broker, topics ...string) *broker.Delivery {
	e.t.Helper()
	return e.fetchN(b, topics, 1, 1)[0]
}

// expectNone fetches for at least d (at least once) and fails if a job comes.
func (e *env) expectNone(b broker.Broker, topics []string, d time.Duration, why string) {
	e.t.Helper()
	end := time.Now().Add(d)
	for {
		if ds := e.fetch(b, topics, 10); len(ds) > 0 {
			e.t.Fatalf("%s: got %v", why, describe(ds))
		}
		if time.Now().After(end) {
			return
		}
	}
}

func (e *env) ack(b broker.Broker, ds ...*broker.Delivery) {
	e.t.Helper()
	if err := b.Ack(e.ctx, ds...); err != nil {
		e.t.Fatalf("Ack: %v", err)
	}
}

// settled checks what a settle left behind: nothing of topic or of its
// dead-letter topic is pending (every delivery settled was acknowledged in
// the store), topic holds exactly live jobs (ready or delayed) and dead dead
// letters, so that nothing was lost nor left behind. It reads the broker's
// [broker.Inspector] and, when b has one, its [broker.DeadLetterAdmin]; on
// a broker with neither it checks nothing. A topic the broker has never
// seen holds nothing.
func (e *env) settled(b broker.Broker, topic string, live, dead int64) {
	e.t.Helper()
	in, ok := b.(broker.Inspector)
	if !ok {
		return
	}
	inspect := func(topic string) broker.TopicInfo {
		e.t.Helper()
		info, err := in.Inspect(e.ctx, topic)
		if errors.Is(err, broker.ErrNotFound) {
			return broker.TopicInfo{Topic: topic}
		}
		if err != nil {
			e.t.Fatalf("Inspect(%q): %v", topic, err)
		}
		return *info
	}
	info := inspect(topic)
	if info.Pending != 0 {
		e.t.Errorf("%q after settling: %d entries still pending (a settled delivery was not acknowledged in the store)", topic, info.Pending)
	}
	if got := info.Length + info.Delayed; got != live {
		e.t.Errorf("%q after settling: %d jobs (%d in the stream, %d delayed), want %d", topic, got, info.Length, info.Delayed, live)
	}
	if info.DeadLetters != dead {
		e.t.Errorf("%q after settling: %d dead letters, want %d", topic, info.DeadLetters, dead)
	}
	dlq := job.DeadLetterTopic(topic)
	if p := inspect(dlq).Pending; p != 0 {
		e.t.Errorf("%q after settling: %d entries still pending", dlq, p)
	}
	if a, ok := b.(broker.DeadLetterAdmin); ok {
		if n := int64(len(e.deadLetters(a, topic, 100))); n != dead {
			e.t.Errorf("%q after settling: DeadLetters lists %d, want %d", topic, n, dead)
		}
	}
}

// describe renders deliveries for failure messages.
func describe(ds []*broker.Delivery) string {
	s := "["
	for i, d := range ds {
		if i > 0 {
			s += " "
		}
		s += fmt.Sprintf("%s/%s#%d(%q)", d.Job.Topic, d.Job.ID, d.Job.Attempt, d.Job.Payload)
	}
	return s + "]"
}

func payloads(ds []*broker.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = string(d.Job.Payload)
	}
	return out
}

func ids(ds []*broker.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.Job.ID
	}
	return out
}

// sameTime compares times at the millisecond resolution stores keep.
func sameTime(a, b time.Time) bool {
	d := a.Sub(b)
	return d > -time.Millisecond && d < time.Millisecond
}

// checkJob compares the identity of got with want: ID, topic, payload,
// headers and EnqueuedAt.
func checkJob(t testing.TB, got, want *job.Job) {
	t.Helper()
	if got.ID != want.ID {
		t.Errorf("ID = %q, want %q", got.ID, want.ID)
	}
	if got.Topic != want.Topic {
		t.Errorf("Topic = %q, want %q", got.Topic, want.Topic)
	}
	if string(got.Payload) != string(want.Payload) {
		t.Errorf("Payload = %q, want %q", got.Payload, want.Payload)
	}
	if len(got.Headers) != len(want.Headers) || !maps.Equal(got.Headers, want.Headers) {
		t.Errorf("Headers = %v, want %v", got.Headers, want.Headers)
	}
	if !sameTime(got.EnqueuedAt, want.EnqueuedAt) {
		t.Errorf("EnqueuedAt = %v, want %v (the first enqueue)", got.EnqueuedAt, want.EnqueuedAt)
	}
}

// checkFailure compares the recorded failure with want on the fields a
// broker must keep.
func checkFailure(t testing.TB, got *job.Failure, want job.Failure) {
	t.Helper()
	if got == nil {
		t.Fatalf("Failure = nil, want %+v", want)
	}
	if got.Error != want.Error || got.Reason != want.Reason || got.Origin != want.Origin || got.Handler != want.Handler {
		t.Errorf("Failure = %+v, want Error %q, Reason %q, Origin %q, Handler %q", *got, want.Error, want.Reason, want.Origin, want.Handler)
	}
	if !want.At.IsZero() && !sameTime(got.At, want.At) {
		t.Errorf("Failure.At = %v, want %v", got.At, want.At)
	}
	if got.Stack != want.Stack {
		t.Errorf("Failure.Stack = %q, want %q", got.Stack, want.Stack)
	}
}

// power returns b as the optional interface T, or skips the test when b
// does not implement it.
func power[T any](t testing.TB, b broker.Broker, name string) T {
	t.Helper()
	p, ok := b.(T)
	if !ok {
		t.Skip("broker does not implement broker." + name)
	}
	return p
}

// inspector returns b's Inspector or skips the test.
func inspector(t testing.TB, b broker.Broker) broker.Inspector {
	t.Helper()
	return power[broker.Inspector](t, b, "Inspector")
}

// trimmer returns b's Trimmer or skips the test.
func trimmer(t testing.TB, b broker.Broker) broker.Trimmer {
	t.Helper()
	return power[broker.Trimmer](t, b, "Trimmer")
}

// dlAdmin returns b's DeadLetterAdmin or skips the test.
func dlAdmin(t testing.TB, b broker.Broker) broker.DeadLetterAdmin {
	t.Helper()
	return power[broker.DeadLetterAdmin](t, b, "DeadLetterAdmin")
}

// deadLetters lists all dead letters of topic, page by page.
func (e *env) deadLetters(a broker.DeadLetterAdmin, topic string, page int) []broker.DeadLetter {
	e.t.Helper()
	var out []broker.DeadLetter
	after := ""
	for {
		dls, err := a.DeadLetters(e.ctx, topic, after, page)
		if err != nil {
			e.t.Fatalf("DeadLetters(%q, %q, %d): %v", topic, after, page, err)
		}
		if len(dls) > page {
			e.t.Fatalf("DeadLetters(%q, %q, %d) returned %d", topic, after, page, len(dls))
		}
		out = append(out, dls...)
		if len(dls) < page {
			return out
		}
		after = dls[len(dls)-1].ID
	}
}

// deadLetterAll fetches n jobs of topic, and dead-letters them in FIFO order
// with failure "fail-<payload>"; it returns the deliveries.
func (e *env) deadLetterAll(b broker.Broker, topic string, n int) []*broker.Delivery {
	e.t.Helper()
	ds := e.fetchN(b, []string{topic}, n, n)
	for _, d := range ds {
		f := job.Failure{Error: "fail-" + string(d.Job.Payload), Reason: job.ReasonPermanent, Origin: topic, At: time.Now()}
		if err := b.DeadLetter(e.ctx, d, f); err != nil {
			e.t.Fatalf("DeadLetter: %v", err)
		}
	}
	return ds
}

func isClosedOrCtx(err error) bool {
	return errors.Is(err, broker.ErrClosed) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}
