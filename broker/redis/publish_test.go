package redis_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/redis"
	"github.com/conveyor-jobs/conveyor/job"
)

// entryMS returns the milliseconds of a stream entry ID.
func entryMS(t testing.TB, id string) int64 {
	t.Helper()
	ms, _, _ := strings.Cut(id, "-")
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		t.Fatalf("%q is not a stream entry ID", id)
	}
	return n
}

// afterMS waits until the local clock (Redis's, on this machine) is past ms,
// so that a new stream entry cannot share the millisecond of an earlier one.
func afterMS(t testing.TB, ms int64) {
	t.Helper()
	eventually(t, "the clock to pass "+strconv.FormatInt(ms, 10), func() bool { return time.Now().UnixMilli() > ms+1 })
}

func TestPublishWritesMinimalEntry(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		m    broker.Message
		want map[string]any // the stored fields; "" for id means the returned ID
	}{
		{name: "payload only", m: broker.Message{Payload: []byte(`{"x":1}`)}, want: map[string]any{"payload": `{"x":1}`}},
		{name: "nil payload", m: broker.Message{}, want: map[string]any{"payload": ""}},
		{name: "headers", m: broker.Message{Payload: []byte("p"), Headers: map[string]string{"tenant": "acme", "a": ""}},
			want: map[string]any{"payload": "p", "h.tenant": "acme", "h.a": ""}},
		{name: "caller ID", m: broker.Message{Payload: []byte("p"), ID: "job-7"}, want: map[string]any{"payload": "p", "id": "job-7"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			b := e.broker(t, "c1", nil)
			ctx := context.Background()
			for _, batch := range []bool{false, true} {
				m := tt.m
				m.Topic = "t"
				var id string
				if batch {
					ids, err := b.PublishBatch(ctx, []broker.Message{m, m})
					if err != nil {
						t.Fatal(err)
					}
					id = ids[1]
				} else {
					var err error
					if id, err = b.Publish(ctx, m); err != nil {
						t.Fatal(err)
					}
				}
				msgs, err := e.rdb.XRevRangeN(ctx, e.key("t", "stream"), "+", "-", 1).Result()
				if err != nil || len(msgs) != 1 {
					t.Fatalf("XREVRANGE: %v %v", msgs, err)
				}
				if !maps.Equal(msgs[0].Values, tt.want) {
					t.Fatalf("batch=%v: stored %v, want %v", batch, msgs[0].Values, tt.want)
				}
				wantID := tt.m.ID
				if wantID == "" {
					wantID = msgs[0].ID
				}
				if id != wantID {
					t.Fatalf("batch=%v: returned ID %q, want %q", batch, id, wantID)
				}
			}
			ds := fetchN(t, b, []string{"t"}, 3)
			for _, d := range ds {
				j := d.Job
				if j.Attempt != 1 || j.EnqueuedAt.UnixMilli() != entryMS(t, d.Receipt) || string(j.Payload) != string(tt.m.Payload) ||
					(tt.m.ID == "" && j.ID != d.Receipt) || (tt.m.ID != "" && j.ID != tt.m.ID) || !maps.Equal(j.Headers, tt.m.Headers) {
					t.Fatalf("delivered %+v (entry %s)", j, d.Receipt)
				}
			}
		})
	}
}

func TestPublishBatchReturnsEntryIDs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	clk := newClock()
	b := e.broker(t, "c1", func(o *redis.Options) { o.Now = clk.Now })
	ctx := context.Background()
	ms := []broker.Message{
		{Topic: "a", Payload: []byte("a1")},
		{Topic: "b", Payload: []byte("b1")},
		{Topic: "a", Payload: []byte("a2")},
		{Topic: "a", Payload: []byte("later"), Delay: time.Minute},
		{Topic: "b", Payload: []byte("b2"), ID: "given"},
	}
	ids, err := b.PublishBatch(ctx, ms)
	if err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{"a", "b"} {
		msgs, err := e.rdb.XRange(ctx, e.key(topic, "stream"), "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			i := -1
			for k := range ms {
				if ms[k].Topic == topic && string(ms[k].Payload) == m.Values["payload"] {
					i = k
				}
			}
			want := m.ID
			if ms[i].ID != "" {
				want = ms[i].ID
			}
			if ids[i] != want {
				t.Fatalf("message %d: ID %q, want %q", i, ids[i], want)
			}
		}
	}
	if ids[0] == ids[2] || ids[3] == "" || strings.Contains(ids[3], "-") == false {
		t.Fatalf("ids %v", ids)
	}
	// The delayed job's ID and enqueue time are in its member, and the
	// promoted entry carries them explicitly.
	topics, _ := e.rdb.SMembers(ctx, e.ns+":topics").Result()
	if len(topics) != 2 {
		t.Fatalf("registry %v", topics)
	}
	enq := clk.Now().Add(-time.Hour)
	clk.Advance(-time.Hour) // publish the delayed job at a time far from Redis's clock
	id, err := b.Publish(ctx, broker.Message{Topic: "c", Payload: []byte("p"), Delay: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour + time.Minute)
	d := fetchN(t, b, []string{"c"}, 1)[0]
	raw, _ := e.rdb.XRange(ctx, e.key("c", "stream"), d.Receipt, d.Receipt).Result()
	if d.Job.ID != id || d.Job.ID == d.Receipt || d.Job.EnqueuedAt.UnixMilli() != enq.UnixMilli() || d.Job.Attempt != 1 ||
		len(raw) != 1 || raw[0].Values["id"] != id || raw[0].Values["enqueued_at"] != strconv.FormatInt(enq.UnixMilli(), 10) {
		t.Fatalf("promoted %+v, stored %v", d.Job, raw)
	}
}

// TestMinimalJobKeepsIDAndEnqueuedAt follows a job published with the
// minimal entry through every step that re-adds it as a new entry: each new
// entry must carry the original ID and enqueue time explicitly.
func TestMinimalJobKeepsIDAndEnqueuedAt(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	clk := newClock()
	b := e.broker(t, "c1", func(o *redis.Options) { o.Now = clk.Now })
	ctx := context.Background()
	id, err := b.Publish(ctx, broker.Message{Topic: "t", Payload: []byte("p"), Headers: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	enq := entryMS(t, id)
	check := func(step string, d *broker.Delivery, topic string, attempt int) {
		t.Helper()
		if d.Job.ID != id || d.Job.EnqueuedAt.UnixMilli() != enq || d.Job.Attempt != attempt || d.Job.Topic != topic ||
			string(d.Job.Payload) != "p" || d.Job.Header("k") != "v" {
			t.Fatalf("after %s: %+v (entry %s), want ID %s, enqueued at %d ms, attempt %d", step, d.Job, d.Receipt, id, enq, attempt)
		}
		if step != "publish" && d.Receipt == id {
			t.Fatalf("after %s: still the original entry", step)
		}
		afterMS(t, entryMS(t, d.Receipt))
	}
	d := fetchN(t, b, []string{"t"}, 1)[0]
	check("publish", d, "t", 1)
	steps := []struct {
		name    string
		settle  func(d *broker.Delivery) error
		advance time.Duration
		topic   string
		attempt int
	}{
		{"retry", func(d *broker.Delivery) error { return b.Retry(ctx, d, 0, job.Failure{Error: "x"}) }, 0, "t", 2},
		{"delayed retry", func(d *broker.Delivery) error { return b.Retry(ctx, d, time.Minute, job.Failure{Error: "x"}) }, time.Minute, "t", 3},
		{"snooze", func(d *broker.Delivery) error { return b.Snooze(ctx, d, 0) }, 0, "t", 3},
		{"delayed snooze", func(d *broker.Delivery) error { return b.Snooze(ctx, d, time.Minute) }, time.Minute, "t", 3},
		{"dead letter", func(d *broker.Delivery) error {
			return b.DeadLetter(ctx, d, job.Failure{Error: "x", Reason: job.ReasonPermanent})
		}, 0, "t.dlq", 3},
		{"replay", func(d *broker.Delivery) error {
			n, err := b.ReplayDeadLetters(ctx, "t", []string{d.Receipt})
			if err == nil && n != 1 {
				t.Fatalf("replayed %d", n)
			}
			return err
		}, 0, "t", 1},
	}
	for _, s := range steps {
		if err := s.settle(d); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		clk.Advance(s.advance)
		d = fetchN(t, b, []string{s.topic}, 1)[0]
		check(s.name, d, s.topic, s.attempt)
	}
	if d.Job.Failure != nil {
		t.Fatalf("replayed job has failure %+v", d.Job.Failure)
	}
}

// TestMinimalEntryDeadLetteredByBroker covers the dead letters the broker
// writes itself: a poison entry (delivered MaxDeliveries times with no
// outcome) and a
// malformed one, both added without id or enqueued_at.
func TestMinimalEntryDeadLetteredByBroker(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.broker(t, "c1", func(o *redis.Options) {
		o.Lease = 20 * time.Millisecond
		o.MaxDeliveries = 1
	})
	ctx := context.Background()
	id, err := b.Publish(ctx, broker.Message{Topic: "t", Payload: []byte("p")})
	if err != nil {
		t.Fatal(err)
	}
	bad, err := e.rdb.XAdd(ctx, &goredis.XAddArgs{Stream: e.key("m", "stream"), Values: []string{"junk", "x"}}).Result()
	if err != nil {
		t.Fatal(err)
	}
	d := fetchN(t, b, []string{"t"}, 1)[0] // never settled: its lease expires
	afterMS(t, entryMS(t, d.Receipt))
	afterMS(t, entryMS(t, bad))
	for _, c := range []struct{ topic, id string }{{"t", id}, {"m", bad}} {
		// Fetching the topic recovers (or reads) the entry and dead-letters it.
		dl := fetchN(t, b, []string{c.topic, c.topic + ".dlq"}, 1)[0]
		if dl.Job.Topic != c.topic+".dlq" || dl.Job.ID != c.id || dl.Job.EnqueuedAt.UnixMilli() != entryMS(t, c.id) || dl.Job.Attempt != 1 || dl.Job.Failure == nil {
			t.Fatalf("dead letter of %s: %+v (entry %s), want ID %s", c.topic, dl.Job, dl.Receipt, c.id)
		}
	}
}

// TestReplayPlainDeadLetter replays a dead letter added by hand with payload
// only: the replayed job keeps the ID and time its dead letter implied.
func TestReplayPlainDeadLetter(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.broker(t, "c1", nil)
	ctx := context.Background()
	entry, err := e.rdb.XAdd(ctx, &goredis.XAddArgs{Stream: e.key("t", "dlq"), Values: []string{"payload", "p"}}).Result()
	if err != nil {
		t.Fatal(err)
	}
	afterMS(t, entryMS(t, entry))
	if n, err := b.ReplayDeadLetters(ctx, "t", nil); err != nil || n != 1 {
		t.Fatalf("replay = %d, %v", n, err)
	}
	d := fetchN(t, b, []string{"t"}, 1)[0]
	if d.Job.ID != entry || d.Job.EnqueuedAt.UnixMilli() != entryMS(t, entry) || d.Job.Attempt != 1 || string(d.Job.Payload) != "p" {
		t.Fatalf("replayed %+v (entry %s), want ID %s", d.Job, d.Receipt, entry)
	}
}

// TestPublishBatchPartialFailure: when Redis refuses some commands of a
// batch, PublishBatch returns a *broker.BatchError naming them and the IDs
// of the jobs that were enqueued, so the producer can publish the failed
// ones again without duplicating the others.
func TestPublishBatchPartialFailure(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	b := e.broker(t, "p", nil)
	// The bad topic's stream key holds a string: its XADD fails with WRONGTYPE.
	if err := e.rdb.Set(ctx, e.key("bad", "stream"), "not a stream", 0).Err(); err != nil {
		t.Fatal(err)
	}
	ms := []broker.Message{
		{Topic: "good", Payload: []byte(`{"n":1}`)},
		{Topic: "bad", Payload: []byte(`{"n":2}`)},
		{Topic: "good", Payload: []byte(`{"n":3}`)},
		{Topic: "good", Payload: []byte(`{"n":4}`), Delay: time.Hour},
	}
	ids, err := b.PublishBatch(ctx, ms)
	var be *broker.BatchError
	if !errors.As(err, &be) {
		t.Fatalf("PublishBatch = %v, %v; want a *broker.BatchError", ids, err)
	}
	if !slices.Equal(be.Failed, []int{1}) || !strings.Contains(err.Error(), "WRONGTYPE") {
		t.Errorf("BatchError = %v (Failed %v), want message 1 failed with WRONGTYPE", err, be.Failed)
	}
	if len(ids) != len(ms) || ids[0] == "" || ids[1] != "" || ids[2] == "" || ids[3] == "" {
		t.Fatalf("ids = %q, want the IDs of messages 0, 2 and 3 and \"\" for 1", ids)
	}
	if n := xlen(t, e.rdb, e.key("good", "stream")); n != 2 {
		t.Errorf("good stream holds %d entries, want the 2 confirmed", n)
	}
	if n, err := e.rdb.ZCard(ctx, e.key("good", "delayed")).Result(); err != nil || n != 1 {
		t.Errorf("good delayed set = %d, %v; want the delayed job", n, err)
	}
}
