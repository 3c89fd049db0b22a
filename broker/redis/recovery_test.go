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
	"github.com/conveyor-jobs/conveyor/internal/logtest"
	"github.com/conveyor-jobs/conveyor/job"
)

// shortLease gives brokers a 150ms lease.
func shortLease(o *redis.Options) { o.Lease = 150 * time.Millisecond }

func TestRecoveryCountsAttemptsAndDeadLettersPoison(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	a := e.broker(t, "a", shortLease)
	bb := e.broker(t, "b", func(o *redis.Options) { shortLease(o); o.MaxDeliveries = 3 })
	id, err := a.Publish(ctx, broker.Message{Topic: "t", Payload: []byte("p")})
	if err != nil {
		t.Fatal(err)
	}
	d := fetchN(t, a, []string{"t"}, 1)[0]
	if d.Job.Attempt != 1 {
		t.Fatalf("first attempt %d", d.Job.Attempt)
	}
	// a "crashes"; b recovers after the lease, twice, counting attempts.
	for want := 2; want <= 3; want++ {
		d = fetchN(t, bb, []string{"t"}, 1)[0]
		if d.Job.Attempt != want || d.Job.ID != id {
			t.Fatalf("redelivery: attempt %d id %s, want %d %s", d.Job.Attempt, d.Job.ID, want, id)
		}
	}
	// The next redelivery would be attempt 4 > 3: dead-lettered instead.
	fetchNone(t, bb, []string{"t"}, 400*time.Millisecond)
	eventually(t, "poison dead letter", func() bool { return xlen(t, e.rdb, e.key("t", "dlq")) == 1 })
	if n := xlen(t, e.rdb, e.key("t", "stream")); n != 0 {
		t.Fatalf("stream %d", n)
	}
	dl := fetchN(t, bb, []string{"t.dlq"}, 1)[0]
	if dl.Job.ID != id || dl.Job.Failure == nil || dl.Job.Failure.Reason != job.ReasonMaxDeliveries || dl.Job.Attempt != 3 {
		t.Fatalf("dead letter %+v %+v", dl.Job, dl.Job.Failure)
	}
}

func TestRecoveryReportsDeletedEntriesAsLost(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	a := e.broker(t, "a", shortLease)
	bb := e.broker(t, "b", shortLease)
	if _, err := a.PublishBatch(ctx, []broker.Message{{Topic: "t", Payload: []byte("1")}, {Topic: "t", Payload: []byte("2")}}); err != nil {
		t.Fatal(err)
	}
	ds := fetchN(t, a, []string{"t"}, 2)
	// Someone deletes one pending entry behind the broker's back.
	if err := e.rdb.XDel(ctx, e.key("t", "stream"), ds[0].Receipt).Err(); err != nil {
		t.Fatal(err)
	}
	d := fetchN(t, bb, []string{"t"}, 1)[0]
	if string(d.Job.Payload) != "2" || d.Job.Attempt != 2 {
		t.Fatalf("recovered %+v", d.Job)
	}
	eventually(t, "lost count", func() bool { return bb.Lost() == 1 })
	pending, err := e.rdb.XPending(ctx, e.key("t", "stream"), "conveyor").Result()
	if err != nil {
		t.Fatal(err)
	}
	if pending.Count != 1 {
		t.Fatalf("pending %d, want 1 (the deleted entry is no longer pending)", pending.Count)
	}
}

func TestExtendDoesNotStealBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	a := e.broker(t, "a", shortLease)
	bb := e.broker(t, "b", shortLease)
	if _, err := a.Publish(ctx, broker.Message{Topic: "t", Payload: []byte("p")}); err != nil {
		t.Fatal(err)
	}
	da := fetchN(t, a, []string{"t"}, 1)[0]
	db := fetchN(t, bb, []string{"t"}, 1)[0] // recovered after a's lease expired
	if db.Receipt != da.Receipt {
		t.Fatalf("different entries %s %s", da.Receipt, db.Receipt)
	}
	if err := a.Extend(ctx, da); !errors.Is(err, broker.ErrNotFound) {
		t.Fatalf("Extend of a delivery another consumer recovered: %v, want ErrNotFound", err)
	}
	owner := func() string {
		p, err := e.rdb.XPendingExt(ctx, &goredis.XPendingExtArgs{Stream: e.key("t", "stream"), Group: "conveyor", Start: "-", End: "+", Count: 10}).Result()
		if err != nil || len(p) != 1 {
			t.Fatalf("pending %v %v", p, err)
		}
		return p[0].Consumer
	}
	if o := owner(); o != "b" {
		t.Fatalf("owner after a's Extend: %s, want b", o)
	}
	// b's own heartbeat keeps the lease: a cannot recover it meanwhile.
	for range 5 {
		if err := bb.Extend(ctx, db); err != nil {
			t.Fatal(err)
		}
		ds, err := a.Fetch(ctx, []string{"t"}, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) > 0 {
			t.Fatal("a recovered a job b keeps extending")
		}
	}
	if o := owner(); o != "b" {
		t.Fatalf("owner %s, want b", o)
	}
}

func TestStaleSettleDoesNotDuplicate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		settle func(ctx context.Context, b *redis.Broker, d *broker.Delivery) error
	}{
		{"retry", func(ctx context.Context, b *redis.Broker, d *broker.Delivery) error {
			return b.Retry(ctx, d, 0, job.Failure{Error: "x"})
		}},
		{"delayed retry", func(ctx context.Context, b *redis.Broker, d *broker.Delivery) error {
			return b.Retry(ctx, d, time.Minute, job.Failure{Error: "x"})
		}},
		{"snooze", func(ctx context.Context, b *redis.Broker, d *broker.Delivery) error {
			return b.Snooze(ctx, d, 0)
		}},
		{"dead-letter", func(ctx context.Context, b *redis.Broker, d *broker.Delivery) error {
			return b.DeadLetter(ctx, d, job.Failure{Error: "x"})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			a := e.broker(t, "a", shortLease)
			bb := e.broker(t, "b", shortLease)
			if _, err := a.Publish(ctx, broker.Message{Topic: "t", Payload: []byte("p")}); err != nil {
				t.Fatal(err)
			}
			da := fetchN(t, a, []string{"t"}, 1)[0]
			db := fetchN(t, bb, []string{"t"}, 1)[0]
			if err := bb.Ack(ctx, db); err != nil {
				t.Fatal(err)
			}
			if err := tt.settle(ctx, a, da); !errors.Is(err, broker.ErrNotFound) {
				t.Fatalf("stale settle: %v, want ErrNotFound", err)
			}
			s, q := xlen(t, e.rdb, e.key("t", "stream")), xlen(t, e.rdb, e.key("t", "dlq"))
			z := e.rdb.ZCard(ctx, e.key("t", "delayed")).Val()
			if s+q+z != 0 {
				t.Fatalf("stale settle wrote a record: stream %d dlq %d delayed %d", s, q, z)
			}
			if a.StaleSettles() != 1 {
				t.Fatalf("stale settles %d", a.StaleSettles())
			}
		})
	}
}

func TestAtomicSettleLeavesExactlyOneRecord(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                 string
		settle               func(ctx context.Context, b *redis.Broker, d *broker.Delivery) error
		stream, dlq, delayed int64
	}{
		{"retry now", func(ctx context.Context, b *redis.Broker, d *broker.Delivery) error {
			return b.Retry(ctx, d, 0, job.Failure{Error: "x"})
		}, 1, 0, 0},
		{"retry later", func(ctx context.Context, b *redis.Broker, d *broker.Delivery) error {
			return b.Retry(ctx, d, time.Minute, job.Failure{Error: "x"})
		}, 0, 0, 1},
		{"snooze later", func(ctx context.Context, b *redis.Broker, d *broker.Delivery) error {
			return b.Snooze(ctx, d, time.Minute)
		}, 0, 0, 1},
		{"dead-letter", func(ctx context.Context, b *redis.Broker, d *broker.Delivery) error {
			return b.DeadLetter(ctx, d, job.Failure{Error: "x"})
		}, 0, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			b := e.broker(t, "a", nil)
			if _, err := b.Publish(ctx, broker.Message{Topic: "t", Payload: []byte("p")}); err != nil {
				t.Fatal(err)
			}
			d := fetchN(t, b, []string{"t"}, 1)[0]
			// Settling twice must fail and not add a second record.
			if err := tt.settle(ctx, b, d); err != nil {
				t.Fatal(err)
			}
			if err := tt.settle(ctx, b, d); !errors.Is(err, broker.ErrNotFound) {
				t.Fatalf("second settle: %v, want ErrNotFound", err)
			}
			s, q := xlen(t, e.rdb, e.key("t", "stream")), xlen(t, e.rdb, e.key("t", "dlq"))
			z := e.rdb.ZCard(ctx, e.key("t", "delayed")).Val()
			if s != tt.stream || q != tt.dlq || z != tt.delayed {
				t.Fatalf("stream %d dlq %d delayed %d, want %d %d %d", s, q, z, tt.stream, tt.dlq, tt.delayed)
			}
			p, err := e.rdb.XPending(ctx, e.key("t", "stream"), "conveyor").Result()
			if err != nil || p.Count != 0 {
				t.Fatalf("pending %+v %v", p, err)
			}
		})
	}
}

func TestMissingGroupIsRecreated(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		breakIt func(ctx context.Context, e *env) error
	}{
		{"group destroyed", func(ctx context.Context, e *env) error {
			return e.rdb.XGroupDestroy(ctx, e.key("t", "stream"), "conveyor").Err()
		}},
		{"stream deleted", func(ctx context.Context, e *env) error {
			return e.rdb.Del(ctx, e.key("t", "stream")).Err()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			b := e.broker(t, "a", nil)
			fetchNone(t, b, []string{"t"}, 60*time.Millisecond) // group created and cached
			if err := tt.breakIt(ctx, e); err != nil {
				t.Fatal(err)
			}
			if _, err := b.Publish(ctx, broker.Message{Topic: "t", Payload: []byte("p")}); err != nil {
				t.Fatal(err)
			}
			if d := fetchN(t, b, []string{"t"}, 1)[0]; string(d.Job.Payload) != "p" {
				t.Fatalf("got %q", d.Job.Payload)
			}
		})
	}
}

func TestDeadLetterCapReportsOverflow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	b := e.broker(t, "a", func(o *redis.Options) { o.DeadLetterMaxLen = 2 })
	for i := range 3 {
		if _, err := b.Publish(ctx, broker.Message{Topic: "t", Payload: []byte{byte('0' + i)}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range fetchN(t, b, []string{"t"}, 3) {
		if err := b.DeadLetter(ctx, d, job.Failure{Error: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	if q := xlen(t, e.rdb, e.key("t", "dlq")); q != 3 {
		t.Fatalf("dlq %d, want 3: the cap must never drop a dead letter", q)
	}
	if n := b.DeadLetterOverflows(); n != 1 {
		t.Fatalf("overflows %d, want 1", n)
	}
}

// TestAttemptOverflowIsBounded adds an entry whose attempt is the largest
// int64, as a raw producer could. Its attempt is read as job.MaxAttempt
// (with a warning), stays there however often the entry is redelivered or
// retried, and the poison guard still dead-letters it: no arithmetic on the
// attempt overflows and the job never loops.
func TestAttemptOverflowIsBounded(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	var logs logtest.Buffer
	b := e.broker(t, "a", func(o *redis.Options) {
		shortLease(o)
		o.MaxDeliveries = 2
		o.Logger = logs.TextLogger(nil)
	})
	for _, topic := range []string{"crash", "retry"} {
		if err := e.rdb.XAdd(ctx, &goredis.XAddArgs{Stream: e.key(topic, "stream"),
			Values: []string{"payload", "p", "attempt", "9223372036854775807"}}).Err(); err != nil {
			t.Fatal(err)
		}
	}

	// Crashes: delivered twice at the bound, then dead-lettered.
	for range 2 {
		d := fetchN(t, b, []string{"crash"}, 1)[0]
		if d.Job.Attempt != job.MaxAttempt {
			t.Fatalf("Attempt = %d, want %d", d.Job.Attempt, job.MaxAttempt)
		}
	}
	dl := fetchN(t, b, []string{"crash", "crash.dlq"}, 1)[0]
	if dl.Job.Topic != "crash.dlq" || dl.Job.Attempt != job.MaxAttempt || dl.Job.Failure == nil || dl.Job.Failure.Reason != job.ReasonMaxDeliveries {
		t.Fatalf("after two lost leases: %s attempt %d failure %+v, want a dead letter at attempt %d", dl.Job.Topic, dl.Job.Attempt, dl.Job.Failure, job.MaxAttempt)
	}
	if err := b.Ack(ctx, dl); err != nil {
		t.Fatal(err)
	}

	// Retries: the attempt stays at the bound.
	d := fetchN(t, b, []string{"retry"}, 1)[0]
	if err := b.Retry(ctx, d, 0, job.Failure{Error: "e", Reason: job.ReasonError}); err != nil {
		t.Fatal(err)
	}
	d = fetchN(t, b, []string{"retry"}, 1)[0]
	if d.Job.Attempt != job.MaxAttempt {
		t.Fatalf("retried Attempt = %d, want %d", d.Job.Attempt, job.MaxAttempt)
	}
	if err := b.Ack(ctx, d); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf(`attempt \"9223372036854775807\" above %d, using %d`, job.MaxAttempt, job.MaxAttempt); !strings.Contains(logs.String(), want) {
		t.Errorf("no warning %s in the log:\n%s", want, logs.String())
	}
}
