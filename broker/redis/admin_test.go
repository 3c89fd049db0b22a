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
	"github.com/conveyor-jobs/conveyor/internal/redistest"
	"github.com/conveyor-jobs/conveyor/job"
)

func TestTrimNeverRemovesPending(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts broker.TrimOptions
	}{
		{"maxlen", broker.TrimOptions{MaxLen: 1}},
		{"older than", broker.TrimOptions{OlderThan: time.Nanosecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			clk := newClock()
			b := e.broker(t, "a", func(o *redis.Options) { o.Now = clk.Now })
			for _, p := range []string{"0", "1", "2", "3", "4"} {
				if _, err := e.rdb.XAdd(ctx, &goredis.XAddArgs{Stream: e.key("t", "stream"), Values: []string{"payload", p}}).Result(); err != nil {
					t.Fatal(err)
				}
			}
			// A second group holds entry "1" pending; this broker's group
			// holds "2". Entry "0" is older than every pending entry.
			other := e.key("t", "stream")
			if err := e.rdb.XGroupCreate(ctx, other, "other", "0").Err(); err != nil {
				t.Fatal(err)
			}
			all, _ := e.rdb.XRange(ctx, other, "-", "+").Result()
			if err := e.rdb.XGroupCreate(ctx, other, "conveyor", all[1].ID).Err(); err != nil {
				t.Fatal(err)
			}
			if err := e.rdb.XGroupSetID(ctx, other, "other", all[0].ID).Err(); err != nil {
				t.Fatal(err)
			}
			if err := e.rdb.XReadGroup(ctx, &goredis.XReadGroupArgs{Group: "other", Consumer: "x", Streams: []string{other, ">"}, Count: 1, Block: -1}).Err(); err != nil {
				t.Fatal(err)
			}
			d := fetchN(t, b, []string{"t"}, 1)[0]
			if string(d.Job.Payload) != "2" {
				t.Fatalf("fetched %q", d.Job.Payload)
			}
			clk.Advance(time.Hour)
			n, err := b.Trim(ctx, "t", tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if n != 1 {
				t.Fatalf("removed %d, want 1 (only the entry older than every pending one)", n)
			}
			left, _ := e.rdb.XRange(ctx, other, "-", "+").Result()
			if len(left) != 4 || left[0].ID != all[1].ID {
				t.Fatalf("left %v", left)
			}
		})
	}
	t.Run("bad options", func(t *testing.T) {
		e := newEnv(t)
		b := e.broker(t, "a", nil)
		for _, o := range []broker.TrimOptions{{}, {MaxLen: 1, OlderThan: time.Second}, {MaxLen: -1}} {
			if _, err := b.Trim(context.Background(), "t", o); err == nil {
				t.Errorf("Trim(%+v): no error", o)
			}
		}
	})
}

func TestInspectReportsConsumersAndLag(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	b := e.broker(t, "worker-1", nil)
	for range 5 {
		if _, err := b.Publish(ctx, broker.Message{Topic: "t", Payload: []byte("p")}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Publish(ctx, broker.Message{Topic: "t", Payload: []byte("later"), Delay: time.Hour}); err != nil {
		t.Fatal(err)
	}
	ds := fetchN(t, b, []string{"t"}, 2)
	if err := b.Ack(ctx, ds[0]); err != nil {
		t.Fatal(err)
	}
	info, err := b.Inspect(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	if info.Length != 4 || info.Pending != 1 || info.Lag != 3 || info.Delayed != 1 || info.DeadLetters != 0 || info.LastID == "" {
		t.Fatalf("info %+v", info)
	}
	if len(info.Groups) != 1 || info.Groups[0].Name != "conveyor" || len(info.Groups[0].Consumers) != 1 ||
		info.Groups[0].Consumers[0].Name != "worker-1" || info.Groups[0].Consumers[0].Pending != 1 {
		t.Fatalf("groups %+v", info.Groups)
	}
	// A topic never used is empty, not an error.
	info, err = b.Inspect(ctx, "nothing")
	if err != nil || info.Length != 0 || len(info.Groups) != 0 {
		t.Fatalf("empty topic: %+v %v", info, err)
	}
	ps, err := b.PendingEntries(ctx, "t", 10)
	if err != nil || len(ps) != 1 || ps[0].ID != ds[1].Receipt || ps[0].Consumer != "worker-1" || ps[0].Deliveries != 1 {
		t.Fatalf("pending %+v %v", ps, err)
	}
	dj, err := b.DelayedJobs(ctx, "t", 10)
	if err != nil || len(dj) != 1 || string(dj[0].Job.Payload) != "later" || time.Until(dj[0].Due) < 50*time.Minute {
		t.Fatalf("delayed %+v %v", dj, err)
	}
	if err := b.DeleteDelayed(ctx, "t", dj[0].Job.ID); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteDelayed(ctx, "t", dj[0].Job.ID); !errors.Is(err, broker.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

func TestTopicsRegistry(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	b := e.broker(t, "a", nil)
	if _, err := b.Publish(ctx, broker.Message{Topic: "b", Payload: []byte("p")}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Publish(ctx, broker.Message{Topic: "b.dlq", Payload: []byte("p")}); err != nil {
		t.Fatal(err)
	}
	fetchNone(t, b, []string{"a"}, 10*time.Millisecond) // a topic only read from is listed too
	ts, err := b.Topics(ctx)
	if err != nil || len(ts) != 2 || ts[0] != "a" || ts[1] != "b" {
		t.Fatalf("topics %q %v", ts, err)
	}
}

func TestReplayMovesEachDeadLetterOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	b := e.broker(t, "a", nil)
	for range 3 {
		if _, err := b.Publish(ctx, broker.Message{Topic: "t", Payload: []byte("p"), Headers: map[string]string{"k": "v"}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range fetchN(t, b, []string{"t"}, 3) {
		if err := b.DeadLetter(ctx, d, job.Failure{Error: "x", Reason: job.ReasonPermanent}); err != nil {
			t.Fatal(err)
		}
	}
	// A consumer of t.dlq holds one dead letter when the replay happens: it
	// is replayed and acknowledged, not left pending.
	held := fetchN(t, b, []string{"t.dlq"}, 1)[0]
	admin := b
	n, err := admin.ReplayDeadLetters(ctx, "t", []string{held.Receipt, "not-an-id", "1-1"})
	if err != nil || n != 1 {
		t.Fatalf("replay = %d, %v", n, err)
	}
	if p, _ := e.rdb.XPending(ctx, e.key("t", "dlq"), "conveyor").Result(); p.Count != 0 {
		t.Fatalf("dlq pending %d after replay", p.Count)
	}
	if n, err := admin.ReplayDeadLetters(ctx, "t", nil); err != nil || n != 2 {
		t.Fatalf("replay all = %d, %v", n, err)
	}
	ds := fetchN(t, b, []string{"t"}, 3)
	for _, d := range ds {
		if d.Job.Attempt != 1 || d.Job.Failure != nil || d.Job.Header("k") != "v" {
			t.Fatalf("replayed %+v", d.Job)
		}
	}
	if q := xlen(t, e.rdb, e.key("t", "dlq")); q != 0 {
		t.Fatalf("dlq %d", q)
	}
	if _, err := admin.DeadLetterByID(ctx, "t", "bogus"); !errors.Is(err, broker.ErrNotFound) {
		t.Fatalf("DeadLetter(bogus): %v", err)
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	b := e.broker(t, "a", nil)
	if err := b.Check(ctx); err != nil {
		t.Fatal(err)
	}
	fetchNone(t, b, []string{"t"}, 10*time.Millisecond)
	if err := b.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.rdb.Del(ctx, e.key("t", "stream")).Err(); err != nil {
		t.Fatal(err)
	}
	if err := b.Check(ctx); err == nil {
		t.Fatal("Check with the group gone: nil error")
	}
	fetchNone(t, b, []string{"t"}, 10*time.Millisecond) // recreates it
	if err := b.Check(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestServerInfo checks the version, mode and role read with HELLO, over
// RESP3 (go-redis's default) and RESP2.
func TestServerInfo(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	for _, proto := range []int{3, 2} {
		t.Run(fmt.Sprintf("RESP%d", proto), func(t *testing.T) {
			o := srv.Options()
			o.Protocol = proto
			rdb := goredis.NewClient(o)
			defer rdb.Close()
			b, err := redis.New(rdb, &redis.Options{Namespace: srv.Namespace})
			if err != nil {
				t.Fatal(err)
			}
			info, err := b.ServerInfo(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			want, err := rdb.Info(context.Background(), "server").Result()
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(want, "redis_version:"+info.Version+"\r\n") || info.Mode != "standalone" || info.Role != "master" {
				t.Fatalf("ServerInfo = %+v; INFO says:\n%s", info, want)
			}
			if err := rdb.Ping(context.Background()).Err(); err != nil {
				t.Fatalf("the connection is unusable after HELLO: %v", err)
			}
		})
	}
}
