package redis_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/redis"
	"github.com/conveyor-jobs/conveyor/job"
)

// oversizedHeaders is more headers than Lua can unpack in one call: only a
// raw producer (not Publish) can add such an entry.
const oversizedHeaders = 4100

// addOversized adds an entry with oversizedHeaders headers to topic's
// stream, as a raw producer would.
func addOversized(t *testing.T, e *env, topic string) {
	t.Helper()
	values := []any{"payload", "big", "id", "job-big", "attempt", "1"}
	for i := range oversizedHeaders {
		values = append(values, fmt.Sprintf("h.k%d", i), "v")
	}
	if err := e.rdb.XAdd(context.Background(), &goredis.XAddArgs{Stream: e.key(topic, "stream"), Values: values}).Err(); err != nil {
		t.Fatal(err)
	}
}

// pendingCount returns how many entries of topic are pending in the default
// group.
func pendingCount(t *testing.T, e *env, topic string) int64 {
	t.Helper()
	p, err := e.rdb.XPending(context.Background(), e.key(topic, "stream"), redis.DefaultGroup).Result()
	if err != nil {
		t.Fatal(err)
	}
	return p.Count
}

// where reports where topic's jobs are: stream entries, delayed members,
// dead letters and pending entries.
func where(t *testing.T, e *env, topic string) (stream, delayed, dlq, pending int64) {
	t.Helper()
	ctx := context.Background()
	delayed, err := e.rdb.ZCard(ctx, e.key(topic, "delayed")).Result()
	if err != nil {
		t.Fatal(err)
	}
	return xlen(t, e.rdb, e.key(topic, "stream")), delayed, xlen(t, e.rdb, e.key(topic, "dlq")), pendingCount(t, e, topic)
}

func TestSettleOversizedJobIsNeverLost(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cases := []struct {
		name   string
		settle func(*redis.Broker, *broker.Delivery) error
		// dead is true when the job must end dead-lettered (settle
		// succeeds); else the settle fails and the entry stays pending.
		dead bool
	}{
		{"retry now", func(b *redis.Broker, d *broker.Delivery) error {
			return b.Retry(ctx, d, 0, job.Failure{Error: "x"})
		}, false},
		{"retry later", func(b *redis.Broker, d *broker.Delivery) error {
			return b.Retry(ctx, d, time.Hour, job.Failure{Error: "x"})
		}, false},
		{"snooze now", func(b *redis.Broker, d *broker.Delivery) error {
			return b.Snooze(ctx, d, 0)
		}, false},
		{"snooze later", func(b *redis.Broker, d *broker.Delivery) error {
			return b.Snooze(ctx, d, time.Hour)
		}, false},
		{"dead-letter", func(b *redis.Broker, d *broker.Delivery) error {
			return b.DeadLetter(ctx, d, job.Failure{Error: "boom", Reason: job.ReasonPermanent})
		}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			b := e.broker(t, "a", nil)
			addOversized(t, e, "t")
			d := fetchN(t, b, []string{"t"}, 1)[0]
			if len(d.Job.Headers) != oversizedHeaders {
				t.Fatalf("delivered %d headers", len(d.Job.Headers))
			}
			err := tc.settle(b, d)
			stream, delayed, dlq, pending := where(t, e, "t")
			if stream+delayed+dlq+pending == 0 {
				t.Fatalf("job lost (settle error %v)", err)
			}
			if !tc.dead {
				if !errors.Is(err, broker.ErrInvalidMessage) {
					t.Fatalf("settle error %v, want ErrInvalidMessage", err)
				}
				if stream != 1 || pending != 1 || delayed != 0 || dlq != 0 {
					t.Fatalf("stream=%d pending=%d delayed=%d dlq=%d, want the entry left pending", stream, pending, delayed, dlq)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if stream != 0 || pending != 0 || dlq != 1 {
				t.Fatalf("stream=%d pending=%d dlq=%d, want one dead letter", stream, pending, dlq)
			}
			dl := fetchN(t, b, []string{job.DeadLetterTopic("t")}, 1)[0]
			packed := dl.Job.Headers["conveyor-packed-fields"]
			if string(dl.Job.Payload) != "big" || dl.Job.ID != "job-big" || dl.Job.Failure == nil || dl.Job.Failure.Reason != job.ReasonPermanent {
				t.Fatalf("dead letter %+v", dl.Job)
			}
			for _, h := range []string{"h.k0", "h.k4099"} {
				if !strings.Contains(packed, h) {
					t.Fatalf("packed fields lack %s: %.80q", h, packed)
				}
			}
		})
	}
}

func TestOversizedPoisonEntryIsDeadLetteredPacked(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.broker(t, "a", func(o *redis.Options) {
		shortLease(o)
		o.MaxDeliveries = 1
	})
	addOversized(t, e, "t")
	fetchN(t, b, []string{"t"}, 1) // first delivery, never settled
	eventually(t, "poison entry dead-lettered", func() bool {
		if _, err := b.Fetch(context.Background(), []string{"t"}, 1); err != nil {
			t.Fatal(err)
		}
		return xlen(t, e.rdb, e.key("t", "dlq")) == 1
	})
	stream, delayed, _, pending := where(t, e, "t")
	if stream != 0 || delayed != 0 || pending != 0 {
		t.Fatalf("stream=%d delayed=%d pending=%d after dead-lettering", stream, delayed, pending)
	}
	dl := fetchN(t, b, []string{job.DeadLetterTopic("t")}, 1)[0]
	if dl.Job.Failure == nil || dl.Job.Failure.Reason != job.ReasonMaxDeliveries || !strings.Contains(dl.Job.Headers["conveyor-packed-fields"], "h.k4099") {
		t.Fatalf("dead letter %+v", dl.Job.Failure)
	}
}

func TestSettleFailureLeavesEntryPending(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cases := []struct {
		name   string
		target string // key kind overwritten with a string
		settle func(*redis.Broker, *broker.Delivery) error
	}{
		{"dead-letter", "dlq", func(b *redis.Broker, d *broker.Delivery) error {
			return b.DeadLetter(ctx, d, job.Failure{Error: "boom"})
		}},
		{"retry later", "delayed", func(b *redis.Broker, d *broker.Delivery) error {
			return b.Retry(ctx, d, time.Hour, job.Failure{Error: "x"})
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			b := e.broker(t, "a", nil)
			if _, err := b.Publish(ctx, broker.Message{Topic: "t", Payload: []byte("p")}); err != nil {
				t.Fatal(err)
			}
			d := fetchN(t, b, []string{"t"}, 1)[0]
			if err := e.rdb.Set(ctx, e.key("t", tc.target), "not a "+tc.target, 0).Err(); err != nil {
				t.Fatal(err)
			}
			err := tc.settle(b, d)
			if err == nil || !strings.Contains(err.Error(), "WRONGTYPE") {
				t.Fatalf("settle error %v, want WRONGTYPE", err)
			}
			if n := xlen(t, e.rdb, e.key("t", "stream")); n != 1 {
				t.Fatalf("stream has %d entries, want the entry kept", n)
			}
			if n := pendingCount(t, e, "t"); n != 1 {
				t.Fatalf("%d pending, want the entry still pending", n)
			}
			// Once the target is usable again, the same delivery settles.
			if err := e.rdb.Del(ctx, e.key("t", tc.target)).Err(); err != nil {
				t.Fatal(err)
			}
			if err := tc.settle(b, d); err != nil {
				t.Fatal(err)
			}
			if n := pendingCount(t, e, "t"); n != 0 {
				t.Fatalf("%d pending after the settle", n)
			}
		})
	}
}

// TestExtendReportsDeletedEntries: an entry deleted from the stream while
// leased is not reported as renewed: Extend returns ErrNotFound, the job is
// counted in Lost, and the other delivery is renewed.
func TestExtendReportsDeletedEntries(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	b := e.broker(t, "a", nil)
	for _, p := range []string{"kept", "deleted"} {
		if _, err := b.Publish(ctx, broker.Message{Topic: "ext", Payload: []byte(p)}); err != nil {
			t.Fatal(err)
		}
	}
	ds := fetchN(t, b, []string{"ext"}, 2)
	if err := b.Extend(ctx, ds...); err != nil {
		t.Fatalf("Extend of two leased deliveries: %v", err)
	}
	if err := e.rdb.XDel(ctx, e.key("ext", "stream"), ds[1].Receipt).Err(); err != nil {
		t.Fatal(err)
	}
	err := b.Extend(ctx, ds...)
	if !errors.Is(err, broker.ErrNotFound) || !strings.Contains(err.Error(), "1 of 2") {
		t.Fatalf("Extend after XDEL: %v, want ErrNotFound for 1 of 2", err)
	}
	if got := b.Lost(); got != 1 {
		t.Fatalf("Lost() = %d, want 1", got)
	}
	if n := pendingOf(t, e, e.key("ext", "stream"), "a"); n != 1 {
		t.Fatalf("%d entries pending, want 1 (the kept one)", n)
	}
	if err := b.Extend(ctx, ds[0]); err != nil {
		t.Fatalf("Extend of the kept delivery: %v", err)
	}
	if err := b.Ack(ctx, ds[0]); err != nil {
		t.Fatal(err)
	}
}
