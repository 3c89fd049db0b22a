package redis_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/redis"
	"github.com/conveyor-jobs/conveyor/internal/redistest"
)

// resultACLCommands are the commands of the least-privilege ACL user
// (docs/redis.md) and those results and progress add: hset (ack with a
// result, progress), hdel (pruning progress), hmget and pttl (JobState,
// ProgressOf), zscore (JobState of a delayed job).
var resultACLCommands = []string{
	"ping", "hello", "auth", "select",
	"xadd", "xreadgroup", "xack", "xdel", "xautoclaim", "xclaim", "xpending", "xgroup|create", "xgroup|delconsumer",
	"xinfo|groups", "xinfo|stream", "xinfo|consumers", "xlen", "xrange", "xrevrange", "xtrim",
	"zadd", "zrange", "zrangebyscore", "zrem", "zcard",
	"sadd", "smembers", "scan",
	"set", "get", "del", "pexpire", "pexpireat",
	"evalsha", "eval",
	"hset", "hdel", "hmget", "pttl", "zscore",
}

// TestResultACL runs results, progress and JobState as an ACL user with
// exactly resultACLCommands, and checks that an ack with a result refused
// for want of HSET names the permission to grant.
func TestResultACL(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Restartable()) // own server: ACL SETUSER must not touch a shared one
	ctx := context.Background()
	admin := srv.Client(t)
	open := func(user string, commands []string) *redis.Broker {
		t.Helper()
		const pass = "acl-Passw0rd-7"
		args := []any{"ACL", "SETUSER", user, "reset", "on", ">" + pass, "~" + srv.Namespace + ":*", "-@all"}
		for _, c := range commands {
			args = append(args, "+"+c)
		}
		if err := admin.Do(ctx, args...).Err(); err != nil {
			t.Fatalf("ACL SETUSER: %v", err)
		}
		b, err := redis.Open(fmt.Sprintf("redis://%s:%s@%s", user, pass, srv.Addr()), &redis.Options{Namespace: srv.Namespace, Consumer: user, Block: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		return b
	}
	b := open("results", resultACLCommands)
	delayed, err := b.Publish(ctx, broker.Message{Topic: "acl", Payload: []byte("d"), Delay: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if js, err := b.JobState(ctx, "acl", delayed); err != nil || js.State != broker.StateDelayed {
		t.Fatalf("JobState of a delayed job = %+v, %v", js, err)
	}
	id, err := b.Publish(ctx, broker.Message{Topic: "acl", Payload: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	if js, err := b.JobState(ctx, "acl", id); err != nil || js.State != broker.StateQueued {
		t.Fatalf("JobState of a queued job = %+v, %v", js, err)
	}
	d := fetchN(t, b, []string{"acl"}, 1)[0]
	if err := b.RecordProgress(ctx, broker.ProgressUpdate{Delivery: d, Progress: broker.Progress{Fraction: 0.5, At: time.Now()}}); err != nil {
		t.Fatalf("RecordProgress: %v", err)
	}
	if ps, err := b.ProgressOf(ctx, "acl", []string{d.Receipt}); err != nil || len(ps) != 1 {
		t.Fatalf("ProgressOf = %v, %v", ps, err)
	}
	if js, err := b.JobState(ctx, "acl", id); err != nil || js.State != broker.StateRunning || js.Progress == nil {
		t.Fatalf("JobState of a running job = %+v, %v", js, err)
	}
	d.Result = []byte(`"ok"`)
	if err := b.Ack(ctx, d); err != nil {
		t.Fatalf("Ack with a result: %v", err)
	}
	if js, err := b.JobState(ctx, "acl", id); err != nil || js.State != broker.StateSucceeded || js.ExpiresAt.IsZero() {
		t.Fatalf("JobState of a succeeded job = %+v, %v", js, err)
	}

	var without []string
	for _, c := range resultACLCommands {
		if c != "hset" {
			without = append(without, c)
		}
	}
	nb := open("no-hset", without)
	if _, err := nb.Publish(ctx, broker.Message{Topic: "acl2", Payload: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	d = fetchN(t, nb, []string{"acl2"}, 1)[0]
	d.Result = []byte(`"ok"`)
	err = nb.Ack(ctx, d)
	for _, want := range []string{"NOPERM", "+hset"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Ack error %v does not say %q", err, want)
		}
	}
	// The refused ack changed nothing: the job stays pending, to be
	// redelivered after its lease, rather than acked without its result.
	if ps, err := b.PendingEntries(ctx, "acl2", 10); err != nil || len(ps) != 1 || ps[0].ID != d.Receipt {
		t.Fatalf("PendingEntries after the refused ack = %v, %v; want the entry still pending", ps, err)
	}
}
