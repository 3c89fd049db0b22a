package redis_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/redis"
	"github.com/conveyor-jobs/conveyor/job"
)

func TestPublishFetchAck(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.broker(t, "c1", nil)
	ctx := context.Background()
	id, err := b.Publish(ctx, broker.Message{Topic: "orders", Payload: []byte(`{"x":1}`), Headers: map[string]string{"tenant": "acme"}})
	if err != nil {
		t.Fatal(err)
	}
	ds := fetchN(t, b, []string{"orders"}, 1)
	j := ds[0].Job
	if j.ID != id || j.Topic != "orders" || string(j.Payload) != `{"x":1}` || j.Attempt != 1 || j.Header("tenant") != "acme" || j.Failure != nil {
		t.Fatalf("got %+v", j)
	}
	if time.Since(j.EnqueuedAt) > time.Minute || j.EnqueuedAt.After(time.Now().Add(time.Second)) {
		t.Fatalf("EnqueuedAt %v", j.EnqueuedAt)
	}
	if n := xlen(t, e.rdb, e.key("orders", "stream")); n != 1 {
		t.Fatalf("stream length %d before ack", n)
	}
	if err := b.Ack(ctx, ds...); err != nil {
		t.Fatal(err)
	}
	if n := xlen(t, e.rdb, e.key("orders", "stream")); n != 0 {
		t.Fatalf("stream length %d after ack, want 0 (XDEL)", n)
	}
	topics, err := e.rdb.SMembers(ctx, e.ns+":topics").Result()
	if err != nil || len(topics) != 1 || topics[0] != "orders" {
		t.Fatalf("registry %v %v", topics, err)
	}
}

func TestPublishBatchKeepsOrderAndIDs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.broker(t, "c1", nil)
	ctx := context.Background()
	var ms []broker.Message
	for i := range 50 {
		ms = append(ms, broker.Message{Topic: "a", Payload: []byte(strconv.Itoa(i))})
	}
	ms = append(ms, broker.Message{Topic: "b", Payload: []byte("b"), ID: "given"})
	ids, err := b.PublishBatch(ctx, ms)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 51 || ids[50] != "given" {
		t.Fatalf("ids %v", ids)
	}
	ds := fetchN(t, b, []string{"a"}, 50)
	for i, d := range ds {
		if string(d.Job.Payload) != strconv.Itoa(i) || d.Job.ID != ids[i] {
			t.Fatalf("delivery %d: %s %s, want %d %s", i, d.Job.Payload, d.Job.ID, i, ids[i])
		}
	}
	if _, err := b.PublishBatch(ctx, []broker.Message{{Topic: "a"}, {Topic: ""}}); !errors.Is(err, broker.ErrInvalidMessage) {
		t.Fatalf("empty topic: %v", err)
	}
}

func TestFetchNeverReturnsMoreThanMax(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.broker(t, "c1", nil)
	ctx := context.Background()
	for _, topic := range []string{"a", "b", "c"} {
		for i := range 5 {
			if _, err := b.Publish(ctx, broker.Message{Topic: topic, Payload: []byte(strconv.Itoa(i))}); err != nil {
				t.Fatal(err)
			}
		}
	}
	seen := map[string]bool{}
	for len(seen) < 15 {
		ds, err := b.Fetch(ctx, []string{"a", "b", "c"}, 4)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) > 4 {
			t.Fatalf("Fetch returned %d > max 4", len(ds))
		}
		if len(ds) == 0 {
			t.Fatalf("lost deliveries: have %d of 15", len(seen))
		}
		for _, d := range ds {
			key := d.Job.Topic + "/" + d.Receipt
			if seen[key] {
				t.Fatalf("delivered twice: %s", key)
			}
			seen[key] = true
		}
	}
}

func TestRawXAddIsAJob(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.broker(t, "c1", nil)
	ctx := context.Background()
	entry, err := e.rdb.XAdd(ctx, &goredis.XAddArgs{Stream: e.key("orchestrate", "stream"), Values: []string{"payload", `{"x":1}`}}).Result()
	if err != nil {
		t.Fatal(err)
	}
	ds := fetchN(t, b, []string{"orchestrate"}, 1)
	j := ds[0].Job
	ms, _ := strconv.ParseInt(entry[:len(entry)-2], 10, 64)
	if j.ID != entry || ds[0].Receipt != entry || j.Attempt != 1 || string(j.Payload) != `{"x":1}` || j.EnqueuedAt.UnixMilli() != ms {
		t.Fatalf("got %+v (entry %s)", j, entry)
	}
}

func TestMalformedEntries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		fields      []string
		deadLetter  bool
		wantAttempt int
		wantPayload string
	}{
		{name: "no payload", fields: []string{"id", "j1", "data", "x"}, deadLetter: true},
		{name: "empty entry field only", fields: []string{"junk", ""}, deadLetter: true},
		{name: "bad attempt", fields: []string{"payload", "p", "attempt", "zero"}, wantAttempt: 1, wantPayload: "p"},
		{name: "negative attempt", fields: []string{"payload", "p", "attempt", "-3"}, wantAttempt: 1, wantPayload: "p"},
		{name: "bad enqueued_at", fields: []string{"payload", "p", "enqueued_at", "yesterday"}, wantAttempt: 1, wantPayload: "p"},
		{name: "binary payload", fields: []string{"payload", "\x00\xff\xfe\x01garbage"}, wantAttempt: 1, wantPayload: "\x00\xff\xfe\x01garbage"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			b := e.broker(t, "c1", nil)
			ctx := context.Background()
			entry, err := e.rdb.XAdd(ctx, &goredis.XAddArgs{Stream: e.key("t", "stream"), Values: tt.fields}).Result()
			if err != nil {
				t.Fatal(err)
			}
			if tt.deadLetter {
				fetchNone(t, b, []string{"t"}, 200*time.Millisecond)
				if n := xlen(t, e.rdb, e.key("t", "stream")); n != 0 {
					t.Fatalf("malformed entry still in stream (%d)", n)
				}
				ds := fetchN(t, b, []string{"t.dlq"}, 1)
				f := ds[0].Job.Failure
				if f == nil || f.Reason != redis.ReasonMalformed || f.Error == "" || f.Origin != "t" {
					t.Fatalf("failure %+v", f)
				}
				msgs, _ := e.rdb.XRange(ctx, e.key("t", "dlq"), "-", "+").Result()
				if len(msgs) != 1 {
					t.Fatalf("dlq has %d entries", len(msgs))
				}
				for i := 0; i < len(tt.fields); i += 2 {
					if msgs[0].Values[tt.fields[i]] != tt.fields[i+1] {
						t.Fatalf("original field %s not kept: %v", tt.fields[i], msgs[0].Values)
					}
				}
				if _, ok := msgs[0].Values["id"]; !ok && tt.fields[0] != "id" {
					t.Fatalf("dead letter has no id: %v", msgs[0].Values)
				}
				_ = entry
				return
			}
			ds := fetchN(t, b, []string{"t"}, 1)
			if ds[0].Job.Attempt != tt.wantAttempt || string(ds[0].Job.Payload) != tt.wantPayload {
				t.Fatalf("got attempt %d payload %q", ds[0].Job.Attempt, ds[0].Job.Payload)
			}
		})
	}
}

func TestRetrySnoozeDeadLetter(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	clk := newClock()
	b := e.broker(t, "c1", func(o *redis.Options) { o.Now = clk.Now })
	ctx := context.Background()
	id, err := b.Publish(ctx, broker.Message{Topic: "t", Payload: []byte("p"), Headers: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	d := fetchN(t, b, []string{"t"}, 1)[0]
	enq := d.Job.EnqueuedAt
	fail := job.Failure{Error: "boom", Reason: job.ReasonError, Handler: "h"}
	if err := b.Retry(ctx, d, 0, fail); err != nil {
		t.Fatal(err)
	}
	d = fetchN(t, b, []string{"t"}, 1)[0]
	if d.Job.Attempt != 2 || d.Job.ID != id || d.Job.Failure == nil || d.Job.Failure.Error != "boom" ||
		d.Job.Failure.Origin != "t" || d.Job.Failure.Handler != "h" || !d.Job.EnqueuedAt.Equal(enq) || d.Job.Header("k") != "v" {
		t.Fatalf("after retry: %+v %+v", d.Job, d.Job.Failure)
	}

	// Delayed retry: not delivered until the clock passes the due time.
	if err := b.Retry(ctx, d, time.Hour, fail); err != nil {
		t.Fatal(err)
	}
	if n, _ := e.rdb.ZCard(ctx, e.key("t", "delayed")).Result(); n != 1 {
		t.Fatalf("delayed set has %d", n)
	}
	if n := xlen(t, e.rdb, e.key("t", "stream")); n != 0 {
		t.Fatalf("stream has %d after delayed retry", n)
	}
	fetchNone(t, b, []string{"t"}, 150*time.Millisecond)
	clk.Advance(time.Hour)
	d = fetchN(t, b, []string{"t"}, 1)[0]
	if d.Job.Attempt != 3 || d.Job.ID != id {
		t.Fatalf("after delayed retry: %+v", d.Job)
	}

	// Snooze keeps the attempt.
	if err := b.Snooze(ctx, d, time.Minute); err != nil {
		t.Fatal(err)
	}
	fetchNone(t, b, []string{"t"}, 100*time.Millisecond)
	clk.Advance(time.Minute)
	d = fetchN(t, b, []string{"t"}, 1)[0]
	if d.Job.Attempt != 3 {
		t.Fatalf("after snooze: attempt %d", d.Job.Attempt)
	}

	// Dead-letter: exactly one record, fetchable as t.dlq.
	if err := b.DeadLetter(ctx, d, job.Failure{Error: "bad", Reason: job.ReasonPermanent}); err != nil {
		t.Fatal(err)
	}
	if s, q, z := xlen(t, e.rdb, e.key("t", "stream")), xlen(t, e.rdb, e.key("t", "dlq")), e.rdb.ZCard(ctx, e.key("t", "delayed")).Val(); s != 0 || q != 1 || z != 0 {
		t.Fatalf("stream %d dlq %d delayed %d, want 0 1 0", s, q, z)
	}
	dl := fetchN(t, b, []string{"t.dlq"}, 1)[0]
	if dl.Job.Topic != "t.dlq" || dl.Job.ID != id || dl.Job.Attempt != 3 || dl.Job.Failure == nil ||
		dl.Job.Failure.Reason != job.ReasonPermanent || dl.Job.Failure.Origin != "t" || !dl.Job.EnqueuedAt.Equal(enq) {
		t.Fatalf("dead letter %+v %+v", dl.Job, dl.Job.Failure)
	}
	if err := b.Ack(ctx, dl); err != nil {
		t.Fatal(err)
	}
	if q := xlen(t, e.rdb, e.key("t", "dlq")); q != 0 {
		t.Fatalf("dlq %d after ack", q)
	}
}

func TestDelayedPublishNotEarly(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	clk := newClock()
	b := e.broker(t, "c1", func(o *redis.Options) { o.Now = clk.Now })
	ctx := context.Background()
	if _, err := b.PublishBatch(ctx, []broker.Message{
		{Topic: "t", Payload: []byte("later"), Delay: time.Minute},
		{Topic: "t", Payload: []byte("at"), ProcessAt: clk.Now().Add(2 * time.Minute)},
		{Topic: "t", Payload: []byte("now")},
	}); err != nil {
		t.Fatal(err)
	}
	d := fetchN(t, b, []string{"t"}, 1)[0]
	if string(d.Job.Payload) != "now" {
		t.Fatalf("got %q first", d.Job.Payload)
	}
	fetchNone(t, b, []string{"t"}, 100*time.Millisecond)
	clk.Advance(time.Minute)
	if d := fetchN(t, b, []string{"t"}, 1)[0]; string(d.Job.Payload) != "later" {
		t.Fatalf("got %q", d.Job.Payload)
	}
	fetchNone(t, b, []string{"t"}, 100*time.Millisecond)
	clk.Advance(time.Minute)
	if d := fetchN(t, b, []string{"t"}, 1)[0]; string(d.Job.Payload) != "at" {
		t.Fatalf("got %q", d.Job.Payload)
	}
}

func TestCloseUnblocksFetch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.broker(t, "c1", func(o *redis.Options) { o.Block = 300 * time.Millisecond })
	ctx := context.Background()
	if _, err := b.Fetch(ctx, []string{"t"}, 1); err != nil { // creates the group
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		for {
			ds, err := b.Fetch(ctx, []string{"t"}, 1)
			if err != nil || len(ds) > 0 {
				errc <- err
				return
			}
		}
	}()
	time.Sleep(20 * time.Millisecond) // let the loop block in Redis
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, broker.ErrClosed) {
			t.Fatalf("Fetch after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Fetch did not return after Close")
	}
	if _, err := b.Publish(ctx, broker.Message{Topic: "t"}); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("Publish after Close: %v", err)
	}
}

func TestFetchReturnsCtxErr(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.broker(t, "c1", nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.Fetch(ctx, []string{"t"}, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
}

func TestOptionsValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		o    redis.Options
	}{
		{"block too long", redis.Options{Block: 3 * time.Second}},
		{"negative block", redis.Options{Block: -time.Second}},
		{"brace in namespace", redis.Options{Namespace: "a{b}"}},
		{"negative max deliveries", redis.Options{MaxDeliveries: -1}},
	}
	rdb := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1"})
	defer rdb.Close()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := redis.New(rdb, &tt.o); err == nil {
				t.Fatal("no error")
			}
		})
	}
	b, err := redis.New(rdb, nil)
	if err != nil {
		t.Fatal(err)
	}
	o := b.Options()
	if o.Namespace != "conveyor" || o.Group != "conveyor" || o.Lease != 30*time.Second || o.MaxDeliveries != 3 || o.Block != time.Second || o.Consumer == "" {
		t.Fatalf("defaults %+v", o)
	}
}

func TestCloseReleasesUnreturnedDeliveries(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	a := e.broker(t, "a", func(o *redis.Options) { o.Lease = time.Hour })
	topics := []string{"x", "y", "z"}
	for _, topic := range topics {
		for i := range 3 {
			if _, err := a.Publish(ctx, broker.Message{Topic: topic, Payload: []byte(strconv.Itoa(i))}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// One XREADGROUP over three streams reads up to 2 from each: 4 are
	// kept for the next Fetch.
	got, err := a.Fetch(ctx, topics, 2)
	if err != nil || len(got) != 2 {
		t.Fatalf("Fetch = %d, %v", len(got), err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	// The 2 returned stay leased (for an hour); the rest are back, unspent.
	bb := e.broker(t, "b", nil)
	rest := fetchN(t, bb, topics, 7)
	for _, d := range rest {
		if d.Job.Attempt != 1 {
			t.Fatalf("released job has attempt %d", d.Job.Attempt)
		}
		for _, g := range got {
			// Job IDs are stream entry IDs: unique within a topic.
			if g.Job.Topic == d.Job.Topic && g.Job.ID == d.Job.ID {
				t.Fatalf("job %s delivered to both", d.Job.ID)
			}
		}
	}
	fetchNone(t, bb, topics, 100*time.Millisecond)
}

func TestPublishRejectsTooManyHeaders(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.broker(t, "a", nil)
	h := map[string]string{}
	for i := range redis.MaxHeaders + 1 {
		h[strconv.Itoa(i)] = "v"
	}
	if _, err := b.Publish(context.Background(), broker.Message{Topic: "t", Headers: h}); !errors.Is(err, broker.ErrInvalidMessage) {
		t.Fatalf("got %v", err)
	}
	delete(h, "0")
	id, err := b.Publish(context.Background(), broker.Message{Topic: "t", Headers: h})
	if err != nil {
		t.Fatal(err)
	}
	// A job with the most headers allowed can still be retried (its fields
	// go through Lua).
	d := fetchN(t, b, []string{"t"}, 1)[0]
	if d.Job.ID != id || len(d.Job.Headers) != redis.MaxHeaders {
		t.Fatalf("got %s with %d headers", d.Job.ID, len(d.Job.Headers))
	}
	if err := b.Retry(context.Background(), d, time.Millisecond, job.Failure{Error: "x"}); err != nil {
		t.Fatal(err)
	}
	if d := fetchN(t, b, []string{"t"}, 1)[0]; len(d.Job.Headers) != redis.MaxHeaders || d.Job.Attempt != 2 {
		t.Fatalf("after retry: %d headers, attempt %d", len(d.Job.Headers), d.Job.Attempt)
	}
}
