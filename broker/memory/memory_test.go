package memory_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/memory"
	"github.com/conveyor-jobs/conveyor/internal/clocktest"
	"github.com/conveyor-jobs/conveyor/job"
)

// newClock returns a fake clock at a fixed time.
func newClock() *clocktest.Clock {
	return clocktest.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
}

// newFake returns a broker on a fake clock whose Fetch never waits.
func newFake(t *testing.T) (*memory.Broker, *clocktest.Clock) {
	t.Helper()
	c := newClock()
	b := memory.New(&memory.Options{Lease: time.Minute, MaxDeliveries: 4, FetchWait: -1, Now: c.Now})
	t.Cleanup(func() { _ = b.Close() })
	return b, c
}

func mustPublish(t *testing.T, b broker.Broker, m broker.Message) string {
	t.Helper()
	id, err := b.Publish(context.Background(), m)
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	return id
}

func mustFetch(t *testing.T, b broker.Broker, topic string, want int) []*broker.Delivery {
	t.Helper()
	ds, err := b.Fetch(context.Background(), []string{topic}, 100)
	if err != nil {
		t.Fatalf("Fetch(%q): %v", topic, err)
	}
	if len(ds) != want {
		t.Fatalf("Fetch(%q) got %d jobs, want %d", topic, len(ds), want)
	}
	return ds
}

func TestDefaults(t *testing.T) {
	b := memory.New(nil)
	defer b.Close()
	if b.Lease() != memory.DefaultLease {
		t.Errorf("Lease() = %v, want %v", b.Lease(), memory.DefaultLease)
	}
	if b.Name() != memory.DefaultConsumer {
		t.Errorf("Name() = %q, want %q", b.Name(), memory.DefaultConsumer)
	}
	if err := b.Check(context.Background()); err != nil {
		t.Errorf("Check: %v", err)
	}
}

func TestFakeClockDelaysAndLeases(t *testing.T) {
	ctx := context.Background()
	b, c := newFake(t)
	other := b.Consumer("other")
	mustPublish(t, b, broker.Message{Topic: "t", Payload: []byte("later"), Delay: time.Hour})
	mustFetch(t, b, "t", 0)
	c.Advance(time.Hour - time.Nanosecond)
	mustFetch(t, b, "t", 0)
	c.Advance(time.Nanosecond)
	d := mustFetch(t, b, "t", 1)[0]
	if d.Job.Attempt != 1 {
		t.Fatalf("Attempt = %d", d.Job.Attempt)
	}
	// Extend just before expiry keeps the job from the other consumer.
	c.Advance(time.Minute - time.Second)
	if err := b.Extend(ctx, d); err != nil {
		t.Fatalf("Extend: %v", err)
	}
	c.Advance(time.Minute - time.Second)
	mustFetch(t, other, "t", 0)
	c.Advance(time.Second)
	d2 := mustFetch(t, other, "t", 1)[0]
	if d2.Job.Attempt != 2 || d2.Job.ID != d.Job.ID {
		t.Fatalf("redelivered %s attempt %d, want %s attempt 2", d2.Job.ID, d2.Job.Attempt, d.Job.ID)
	}
	// The first consumer lost the lease: it cannot extend or retry it, and
	// its late Ack is ignored while the other's delivery stays valid.
	if err := b.Extend(ctx, d); !errors.Is(err, broker.ErrNotFound) {
		t.Errorf("Extend of a lost lease: %v, want ErrNotFound", err)
	}
	if err := other.Ack(ctx, d2); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	if err := other.Extend(ctx, d2); !errors.Is(err, broker.ErrNotFound) {
		t.Errorf("Extend after Ack: %v, want ErrNotFound", err)
	}
}

func TestExtendOnlyOwnLeases(t *testing.T) {
	ctx := context.Background()
	b, _ := newFake(t)
	a := b.Consumer("a")
	mustPublish(t, b, broker.Message{Topic: "t"})
	d := mustFetch(t, b, "t", 1)[0]
	if err := a.Extend(ctx, d); !errors.Is(err, broker.ErrNotFound) {
		t.Errorf("Extend by another consumer: %v, want ErrNotFound", err)
	}
	// Same name, same consumer.
	if err := b.Consumer(memory.DefaultConsumer).Extend(ctx, d); err != nil {
		t.Errorf("Extend by a view with the same name: %v", err)
	}
}

func TestFailureDefaults(t *testing.T) {
	ctx := context.Background()
	b, c := newFake(t)
	mustPublish(t, b, broker.Message{Topic: "t", ID: "j"})
	d := mustFetch(t, b, "t", 1)[0]
	if err := b.Retry(ctx, d, 0, job.Failure{Error: "x"}); err != nil {
		t.Fatal(err)
	}
	d = mustFetch(t, b, "t", 1)[0]
	if f := d.Job.Failure; f == nil || f.Origin != "t" || !f.At.Equal(c.Now()) || f.Error != "x" {
		t.Errorf("Failure = %+v, want Origin t and At now", f)
	}
	if err := b.DeadLetter(ctx, d, job.Failure{Error: "y", Reason: job.ReasonPermanent}); err != nil {
		t.Fatal(err)
	}
	dl := mustFetch(t, b, "t.dlq", 1)[0]
	if f := dl.Job.Failure; f == nil || f.Origin != "t" || f.Error != "y" || !f.At.Equal(c.Now()) {
		t.Errorf("dead letter Failure = %+v", f)
	}
	if dl.Job.Attempt != 2 || dl.Job.Topic != "t.dlq" {
		t.Errorf("dead letter attempt %d topic %q", dl.Job.Attempt, dl.Job.Topic)
	}
}

func TestPoisonCountsDeliveriesNotAttempts(t *testing.T) {
	ctx := context.Background()
	b, c := newFake(t) // MaxDeliveries 4
	mustPublish(t, b, broker.Message{Topic: "t", ID: "j"})
	// Retries spend attempts, not deliveries: attempt 5 is delivered.
	for attempt := 1; attempt <= 5; attempt++ {
		d := mustFetch(t, b, "t", 1)[0]
		if d.Job.Attempt != attempt {
			t.Fatalf("Attempt = %d, want %d", d.Job.Attempt, attempt)
		}
		if attempt < 5 {
			if err := b.Retry(ctx, d, 0, job.Failure{Error: "e"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Attempt 5 loses its lease three times: it is redelivered each time,
	// as attempts 6, 7 and 8.
	for attempt := 6; attempt <= 8; attempt++ {
		c.Advance(time.Minute)
		d := mustFetch(t, b, "t", 1)[0]
		if d.Job.Attempt != attempt {
			t.Fatalf("redelivered Attempt = %d, want %d", d.Job.Attempt, attempt)
		}
	}
	// The fourth delivery with no outcome is the last.
	c.Advance(time.Minute)
	mustFetch(t, b, "t", 0)
	dl := mustFetch(t, b, "t.dlq", 1)[0]
	if dl.Job.Attempt != 8 || dl.Job.Failure == nil || dl.Job.Failure.Reason != job.ReasonMaxDeliveries ||
		dl.Job.Failure.Error != "conveyor: delivered 4 times with no outcome: its worker crashed or lost the lease each time" {
		t.Errorf("dead letter attempt %d failure %+v", dl.Job.Attempt, dl.Job.Failure)
	}
}

func TestViews(t *testing.T) {
	ctx := context.Background()
	root := memory.New(&memory.Options{Lease: time.Hour, FetchWait: -1})
	defer root.Close()
	a, b := root.Consumer("a"), root.Consumer("b")
	if a.Name() != "a" {
		t.Errorf("Name() = %q", a.Name())
	}
	mustPublish(t, a, broker.Message{Topic: "t"})
	d := mustFetch(t, a, "t", 1)[0]
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := a.Publish(ctx, broker.Message{Topic: "t"}); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Publish on a closed view: %v", err)
	}
	if err := a.Check(ctx); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Check on a closed view: %v", err)
	}
	// The root and other views go on; they may settle the closed view's job.
	if err := b.Ack(ctx, d); err != nil {
		t.Errorf("Ack of the closed view's delivery by another view: %v", err)
	}
	mustPublish(t, root, broker.Message{Topic: "t"})
	mustFetch(t, b, "t", 1)
	if err := root.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Fetch(ctx, []string{"t"}, 1); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Fetch on a view of a closed root: %v", err)
	}
	if _, err := root.Consumer("late").Publish(ctx, broker.Message{Topic: "t"}); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Publish on a view made after the root closed: %v", err)
	}
}

// Closing the root unblocks its views' Fetches; closing a view unblocks
// only that view's.
func TestCloseUnblocksFetch(t *testing.T) {
	for _, closeRoot := range []bool{true, false} {
		root := memory.New(&memory.Options{FetchWait: time.Minute})
		v, bystander := root.Consumer("v"), root.Consumer("bystander")
		errc := make(chan error, 1)
		go func() {
			_, err := v.Fetch(context.Background(), []string{"t"}, 1)
			errc <- err
		}()
		time.Sleep(20 * time.Millisecond) // let it wait; correct either way
		if closeRoot {
			root.Close()
		} else {
			v.Close()
		}
		select {
		case err := <-errc:
			if !errors.Is(err, broker.ErrClosed) {
				t.Errorf("closeRoot=%v: Fetch: %v, want ErrClosed", closeRoot, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("closeRoot=%v: Fetch still blocked after Close", closeRoot)
		}
		if err := bystander.Check(context.Background()); (err == nil) == closeRoot {
			t.Errorf("closeRoot=%v: the other view's Check = %v", closeRoot, err)
		}
		root.Close()
	}
}

// A waiting Fetch is woken by the broker's timer, not at the end of its wait,
// when a delayed job falls due or a lease expires.
func TestTimerWakesWaiter(t *testing.T) {
	const wait = 20 * time.Second
	cases := []struct {
		name  string
		setup func(t *testing.T, b *memory.Broker)
	}{
		{"delayed job", func(t *testing.T, b *memory.Broker) {
			mustPublish(t, b, broker.Message{Topic: "t", Delay: 50 * time.Millisecond})
		}},
		{"expired lease", func(t *testing.T, b *memory.Broker) {
			mustPublish(t, b, broker.Message{Topic: "t"})
			if ds, err := b.Consumer("crashed").Fetch(context.Background(), []string{"t"}, 1); err != nil || len(ds) != 1 {
				t.Fatalf("Fetch: %d, %v", len(ds), err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := memory.New(&memory.Options{Lease: 50 * time.Millisecond, FetchWait: wait})
			defer b.Close()
			tc.setup(t, b)
			start := time.Now()
			ds, err := b.Fetch(context.Background(), []string{"t"}, 1)
			if err != nil || len(ds) != 1 {
				t.Fatalf("Fetch: %d jobs, %v", len(ds), err)
			}
			if time.Since(start) >= wait {
				t.Errorf("Fetch returned only at the end of its wait")
			}
		})
	}
}

func TestPublishWakesWaiters(t *testing.T) {
	b := memory.New(&memory.Options{FetchWait: 20 * time.Second})
	defer b.Close()
	const fetchers = 3
	type result struct {
		n   int
		err error
	}
	results := make(chan result, fetchers)
	for i := range fetchers {
		v := b.Consumer(string(rune('a' + i)))
		go func() {
			ds, err := v.Fetch(context.Background(), []string{"x", "t"}, 1)
			results <- result{len(ds), err}
		}()
	}
	time.Sleep(20 * time.Millisecond) // let them wait; correct either way
	if _, err := b.PublishBatch(context.Background(), []broker.Message{{Topic: "t"}, {Topic: "t"}, {Topic: "t"}}); err != nil {
		t.Fatal(err)
	}
	for range fetchers {
		select {
		case r := <-results:
			if r.err != nil || r.n != 1 {
				t.Errorf("Fetch: %d jobs, %v; want 1", r.n, r.err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a waiting Fetch was not woken by the publish")
		}
	}
}

func TestFetchArguments(t *testing.T) {
	b, _ := newFake(t)
	cases := []struct {
		name   string
		topics []string
		max    int
	}{
		{"no topics", nil, 1},
		{"zero max", []string{"t"}, 0},
		{"negative max", []string{"t"}, -1},
	}
	for _, tc := range cases {
		if _, err := b.Fetch(context.Background(), tc.topics, tc.max); err == nil {
			t.Errorf("%s: nil error", tc.name)
		}
	}
}

func TestInspect(t *testing.T) {
	ctx := context.Background()
	b, c := newFake(t)
	w := b.Consumer("w")
	if _, err := b.Inspect(ctx, "nope"); !errors.Is(err, broker.ErrNotFound) {
		t.Errorf("Inspect of an unknown topic: %v, want ErrNotFound", err)
	}
	last := ""
	for range 3 {
		last = mustPublish(t, b, broker.Message{Topic: "t"})
	}
	mustPublish(t, b, broker.Message{Topic: "u"})
	ds, err := w.Fetch(ctx, []string{"t"}, 2)
	if err != nil || len(ds) != 2 {
		t.Fatal(len(ds), err)
	}
	c.Advance(time.Second)
	info, err := b.Inspect(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	if info.LastID != last || info.Length != 3 || info.Pending != 2 || info.Lag != 1 {
		t.Errorf("info = %+v", info)
	}
	if len(info.Groups) != 1 || info.Groups[0].Name != memory.GroupName || info.Groups[0].LastDeliveredID != ds[1].Receipt {
		t.Fatalf("groups = %+v", info.Groups)
	}
	cs := info.Groups[0].Consumers
	if len(cs) != 1 || cs[0].Name != "w" || cs[0].Pending != 2 || cs[0].Idle != time.Second {
		t.Errorf("consumers = %+v", cs)
	}
	topics, err := b.Topics(ctx)
	if err != nil || len(topics) != 2 || topics[0] != "t" || topics[1] != "u" {
		t.Errorf("Topics = %q, %v", topics, err)
	}
}

func TestReplayLeasedDeadLetter(t *testing.T) {
	ctx := context.Background()
	b, _ := newFake(t)
	mustPublish(t, b, broker.Message{Topic: "t", ID: "j"})
	d := mustFetch(t, b, "t", 1)[0]
	if err := b.DeadLetter(ctx, d, job.Failure{Error: "x"}); err != nil {
		t.Fatal(err)
	}
	held := mustFetch(t, b, "t.dlq", 1)[0] // being handled on the DLQ
	n, err := b.ReplayDeadLetters(ctx, "t", nil)
	if err != nil || n != 1 {
		t.Fatalf("Replay = %d, %v", n, err)
	}
	if err := b.Ack(ctx, held); err != nil {
		t.Errorf("late Ack of the replayed dead letter: %v", err)
	}
	back := mustFetch(t, b, "t", 1)[0]
	if back.Job.ID != "j" || back.Job.Attempt != 1 || back.Job.Failure != nil {
		t.Errorf("replayed %+v", back.Job)
	}
}

func TestTrimOptions(t *testing.T) {
	b, _ := newFake(t)
	for _, o := range []broker.TrimOptions{{}, {MaxLen: 1, OlderThan: time.Second}, {MaxLen: -1}} {
		if _, err := b.Trim(context.Background(), "t", o); err == nil {
			t.Errorf("Trim(%+v): nil error", o)
		}
	}
}

func TestDeadLetterIDs(t *testing.T) {
	ctx := context.Background()
	b, _ := newFake(t)
	a := b
	if _, err := a.DeadLetterByID(ctx, "t", "nope"); !errors.Is(err, broker.ErrNotFound) {
		t.Errorf("DeadLetter(unknown): %v", err)
	}
	if _, err := a.DeadLetters(ctx, "t", "bad-id", 10); !errors.Is(err, broker.ErrNotFound) {
		t.Errorf("DeadLetters(after a foreign id): %v", err)
	}
	if dls, err := a.DeadLetters(ctx, "t", "", 0); err != nil || len(dls) != 0 {
		t.Errorf("DeadLetters of an empty topic = %v, %v", dls, err)
	}
}

// A delivered job's headers and failure are its own: writing to them does
// not change the stored job or another delivery of it.
func TestDeliveriesAreDetached(t *testing.T) {
	ctx := context.Background()
	b, c := newFake(t)
	mustPublish(t, b, broker.Message{Topic: "t", Headers: map[string]string{"k": "v"}})
	d := mustFetch(t, b, "t", 1)[0]
	if err := b.Retry(ctx, d, 0, job.Failure{Error: "e"}); err != nil {
		t.Fatal(err)
	}
	d1 := mustFetch(t, b, "t", 1)[0]
	d1.Job.Headers["k"] = "changed"
	d1.Job.Failure.Error = "changed"
	c.Advance(time.Minute) // lease lost: redelivered
	d2 := mustFetch(t, b, "t", 1)[0]
	if d2.Job.Header("k") != "v" || d2.Job.Failure.Error != "e" {
		t.Errorf("redelivery sees headers %v, failure %q", d2.Job.Headers, d2.Job.Failure.Error)
	}
}

// A job published without an ID keeps the ID it was given (its first
// receipt) through redelivery, retry, snooze, delay, dead-letter and
// replay, with its EnqueuedAt; Cancel and DeleteDelayed find it by it.
func TestGeneratedIDKept(t *testing.T) {
	ctx := context.Background()
	b, clock := newFake(t)
	published := clock.Now()
	id := mustPublish(t, b, broker.Message{Topic: "t", Payload: []byte("p")})
	ids, err := b.PublishBatch(ctx, []broker.Message{{Topic: "t", Payload: []byte("q"), Delay: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, d *broker.Delivery, attempt int) {
		t.Helper()
		if d.Job.ID != id || string(d.Job.Payload) != "p" || !d.Job.EnqueuedAt.Equal(published) || d.Job.Attempt != attempt {
			t.Errorf("%s: ID %q payload %q EnqueuedAt %v attempt %d; want %q, p, %v, %d",
				what, d.Job.ID, d.Job.Payload, d.Job.EnqueuedAt, d.Job.Attempt, id, published, attempt)
		}
	}
	d := mustFetch(t, b, "t", 1)[0]
	if d.Receipt != id {
		t.Errorf("first delivery: receipt %q, want the ID %q", d.Receipt, id)
	}
	check("first delivery", d, 1)
	clock.Advance(2 * time.Minute) // the lease expires
	d = mustFetch(t, b, "t", 1)[0]
	check("redelivery", d, 2)
	if err := b.Retry(ctx, d, 0, job.Failure{Error: "x"}); err != nil {
		t.Fatal(err)
	}
	d = mustFetch(t, b, "t", 1)[0]
	if d.Receipt == id {
		t.Errorf("a retried job kept its receipt %q", d.Receipt)
	}
	check("retry", d, 3)
	if err := b.Snooze(ctx, d, time.Minute); err != nil {
		t.Fatal(err)
	}
	if djs := mustDelayed(t, b, "t"); len(djs) != 2 || djs[0].Job.ID != id || djs[1].Job.ID != ids[0] {
		t.Errorf("DelayedJobs = %+v, want %s and %s", djs, id, ids[0])
	}
	if err := b.DeleteDelayed(ctx, "t", ids[0]); err != nil {
		t.Errorf("DeleteDelayed by the generated ID: %v", err)
	}
	clock.Advance(time.Minute)
	d = mustFetch(t, b, "t", 1)[0]
	check("snooze", d, 3)
	if err := b.DeadLetter(ctx, d, job.Failure{Error: "dead"}); err != nil {
		t.Fatal(err)
	}
	dls, err := b.DeadLetters(ctx, "t", "", 0)
	if err != nil || len(dls) != 1 || dls[0].Job.ID != id || dls[0].Job.Attempt != 3 {
		t.Fatalf("DeadLetters = %+v, %v", dls, err)
	}
	if n, err := b.ReplayDeadLetters(ctx, "t", nil); err != nil || n != 1 {
		t.Fatalf("Replay = %d, %v", n, err)
	}
	if res, err := b.Cancel(ctx, "t", id); err != nil || res != broker.CancelledQueued {
		t.Fatalf("Cancel by the generated ID = %v, %v", res, err)
	}
	d = mustFetch(t, b, job.DeadLetterTopic("t"), 1)[0]
	check("cancelled", d, 1)
}
