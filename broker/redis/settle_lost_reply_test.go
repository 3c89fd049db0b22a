package redis

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/internal/redistest"
	"github.com/conveyor-jobs/conveyor/job"
)

// TestSettleRunAgainAfterLostReply runs each settle script call twice, as
// go-redis does when the connection breaks after Redis ran the script and
// before its reply arrived: the second run finds the entry settled by its
// own first run and reports success, writes nothing more, and counts no
// stale settle. A new settle call of the same delivery is still refused.
func TestSettleRunAgainAfterLostReply(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	ctx := context.Background()
	b, err := New(srv.Client(t), &Options{Namespace: srv.Namespace, Consumer: "c1", Block: 10 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	f := job.Failure{Error: "boom", Reason: job.ReasonError, Origin: "t", At: time.Now()}
	tests := []struct {
		name  string
		call  func(d *broker.Delivery, k keys) scriptCall
		count func(k keys) (int64, error) // entries the settle wrote
	}{
		{"retry now", func(d *broker.Delivery, k keys) scriptCall {
			return b.settleCall(d, k.stream, k.stream, "stream", "", "", encodeFields(&d.Job, d.Job.Attempt+1, &f))
		}, func(k keys) (int64, error) { return b.rdb.XLen(ctx, k.stream).Result() }},
		{"retry later", func(d *broker.Delivery, k keys) scriptCall {
			return b.settleCall(d, k.stream, k.delayed, "delayed", "99999999999999", encodeMember(encodeFields(&d.Job, d.Job.Attempt+1, &f)), nil)
		}, func(k keys) (int64, error) { return b.rdb.ZCard(ctx, k.delayed).Result() }},
		{"dead-letter", func(d *broker.Delivery, k keys) scriptCall {
			return b.settleCall(d, k.stream, k.dlq, "dlq", "100000", "", encodeFields(&d.Job, d.Job.Attempt, &f))
		}, func(k keys) (int64, error) { return b.rdb.XLen(ctx, k.dlq).Result() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			topic := "lost-reply-" + tt.name
			if _, err := b.Publish(ctx, broker.Message{Topic: topic, Payload: []byte("p")}); err != nil {
				t.Fatal(err)
			}
			ds, err := b.Fetch(ctx, []string{topic}, 1)
			if err != nil || len(ds) != 1 {
				t.Fatalf("Fetch: %v, %d deliveries", err, len(ds))
			}
			d, k := ds[0], b.keysFor(topic)
			c := tt.call(d, k)
			stale := b.StaleSettles()
			if err := b.runSettle(ctx, "settle", d, c); err != nil {
				t.Fatalf("first run: %v", err)
			}
			// The same call again: the reply was lost, the client retries.
			res, err := c.s.Run(ctx, b.rdb, c.keys, c.args...).Int64Slice()
			if err != nil || res[0] != 3 {
				t.Fatalf("second run replied %v, %v; want settled = 3 (already settled by this call)", res, err)
			}
			if err := b.runSettle(ctx, "settle", d, c); err != nil {
				t.Fatalf("third run: %v, want success", err)
			}
			if n := b.StaleSettles() - stale; n != 0 {
				t.Errorf("stale settles counted: %d", n)
			}
			if n, err := tt.count(k); err != nil || n != 1 {
				t.Errorf("the settle wrote %d entries (%v), want 1", n, err)
			}
			// A new settle of the delivery is a second settle, not a retry.
			if err := b.DeadLetter(ctx, d, f); !errors.Is(err, broker.ErrNotFound) {
				t.Errorf("a second settle call: %v, want ErrNotFound", err)
			}
		})
	}
}
