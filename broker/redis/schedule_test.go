package redis_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/redis"
	"github.com/conveyor-jobs/conveyor/internal/redistest"
)

// TestScheduleLayout checks where a schedule's state lives: one hash in
// the topic's slot, listed in <ns>:schedules, with the last tick and its
// job ID, and the job itself an ordinary stream entry of the wire format.
func TestScheduleLayout(t *testing.T) {
	e := newEnv(t)
	b := e.broker(t, "s", nil)
	ctx := context.Background()
	if _, err := b.RegisterSchedule(ctx, broker.ScheduleEntry{Name: "daily", Topic: "reports", Spec: "@daily", Missed: "skip"}); err != nil {
		t.Fatal(err)
	}
	tick := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	m := broker.Message{Topic: "reports", ID: "sched:daily:1772323200000", Payload: []byte("{}"), Headers: map[string]string{broker.HeaderSchedule: "daily"}}
	if _, fired, err := b.PublishTick(ctx, "daily", tick, m); err != nil || !fired {
		t.Fatalf("PublishTick: %v %v", fired, err)
	}
	hash := e.key("reports", "schedule")
	h, err := e.rdb.HGetAll(ctx, hash).Result()
	if err != nil {
		t.Fatal(err)
	}
	if h["last:daily"] != strconv.FormatInt(tick.UnixMilli(), 10) || h["id:daily"] != m.ID || h["entry:daily"] == "" || h["fired:daily"] == "" || h["registered:daily"] == "" {
		t.Errorf("schedule hash %s = %v", hash, h)
	}
	if ok, _ := e.rdb.SIsMember(ctx, e.ns+":schedules", hash).Result(); !ok {
		t.Errorf("%s not in %s:schedules", hash, e.ns)
	}
	xs, err := e.rdb.XRange(ctx, e.key("reports", "stream"), "-", "+").Result()
	if err != nil || len(xs) != 1 {
		t.Fatalf("stream: %v %v", xs, err)
	}
	want := map[string]any{"payload": "{}", "id": m.ID, "h." + broker.HeaderSchedule: "daily"}
	if fmt.Sprint(xs[0].Values) != fmt.Sprint(want) {
		t.Errorf("stream entry %v, want %v", xs[0].Values, want)
	}
}

// TestScheduleACL runs a scheduler's operations as an ACL user granted
// exactly the commands docs/scheduling.md lists.
func TestScheduleACL(t *testing.T) {
	srv := redistest.Start(t, redistest.Restartable()) // own server: ACL SETUSER must not touch a shared one
	ctx := context.Background()
	const user, pass = "conveyor-scheduler", "acl-Passw0rd-42"
	args := []any{"ACL", "SETUSER", user, "reset", "on", ">" + pass, "~" + srv.Namespace + ":*", "-@all"}
	for _, c := range []string{"ping", "hello", "auth", "select", "xadd", "sadd", "smembers", "hset", "hget", "hmget", "hgetall", "evalsha", "eval"} {
		args = append(args, "+"+c)
	}
	if err := srv.Client(t).Do(ctx, args...).Err(); err != nil {
		t.Fatal(err)
	}
	rdb := goredis.NewClient(&goredis.Options{Addr: srv.Addr(), Username: user, Password: pass})
	t.Cleanup(func() { _ = rdb.Close() })
	b, err := redis.New(rdb, &redis.Options{Namespace: srv.Namespace, Consumer: "s"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	if _, err := b.RegisterSchedule(ctx, broker.ScheduleEntry{Name: "n", Topic: "t", Spec: "@hourly", Missed: "skip"}); err != nil {
		t.Fatalf("RegisterSchedule: %v", err)
	}
	tick := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for i, want := range []bool{true, false} {
		if _, fired, err := b.PublishTick(ctx, "n", tick, broker.Message{Topic: "t", ID: "sched:n:1"}); err != nil || fired != want {
			t.Fatalf("PublishTick %d: fired %v, %v; want %v", i, fired, err, want)
		}
	}
	if list, err := b.Schedules(ctx); err != nil || len(list) != 1 {
		t.Fatalf("Schedules: %v, %v", list, err)
	}
}
