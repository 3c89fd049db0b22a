package redis_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/redis"
)

// readAck reads n new entries of stream in group and acknowledges them
// without deleting them (as a consumer other than conveyor might).
func readAck(t *testing.T, rdb goredis.UniversalClient, stream, group string, n int64) {
	t.Helper()
	ctx := context.Background()
	res, err := rdb.XReadGroup(ctx, &goredis.XReadGroupArgs{Group: group, Consumer: "x", Streams: []string{stream, ">"}, Count: n, Block: -1}).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range res[0].Messages {
		if err := rdb.XAck(ctx, stream, group, m.ID).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestTrimKeepsUnreadEntries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// groups maps a group to how many entries it has read and acked.
		groups map[string]int64
		// removed by Trim(MaxLen 1), without and with IncludeUnread.
		byDefault, withUnread int64
	}{
		{"no group", nil, 0, 4},
		{"every group read everything", map[string]int64{"conveyor": 5, "other": 5}, 4, 0},
		{"one group lags", map[string]int64{"conveyor": 4, "other": 1}, 1, 3},
		{"one group read nothing", map[string]int64{"conveyor": 5, "other": 0}, 0, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := newEnv(t)
			b := e.broker(t, "a", nil)
			stream := e.key("t", "stream")
			var ids []string
			for range 5 {
				id, err := e.rdb.XAdd(ctx, &goredis.XAddArgs{Stream: stream, Values: []string{"payload", "p"}}).Result()
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, id)
			}
			for g, n := range tt.groups {
				if err := e.rdb.XGroupCreate(ctx, stream, g, "0").Err(); err != nil {
					t.Fatal(err)
				}
				if n > 0 {
					readAck(t, e.rdb, stream, g, n)
				}
			}
			n, err := b.Trim(ctx, "t", broker.TrimOptions{MaxLen: 1})
			if err != nil || n != tt.byDefault {
				t.Fatalf("Trim(MaxLen 1) = %d, %v; want %d", n, err, tt.byDefault)
			}
			n, err = b.Trim(ctx, "t", broker.TrimOptions{MaxLen: 1, IncludeUnread: true})
			if err != nil || n != tt.withUnread {
				t.Fatalf("Trim(MaxLen 1, IncludeUnread) = %d, %v; want %d", n, err, tt.withUnread)
			}
			left, err := e.rdb.XRange(ctx, stream, "-", "+").Result()
			if err != nil {
				t.Fatal(err)
			}
			if len(left) != 1 || left[0].ID != ids[4] {
				t.Fatalf("left %v, want only the newest entry", left)
			}
		})
	}
}

// TestTrimDryRunMatchesTrim checks, on streams with acknowledged, pending and
// unread entries, several groups or none, that TrimDryRun reports exactly
// what Trim then removes, for every kind of option, and changes nothing.
func TestTrimDryRunMatchesTrim(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	clk := newClock()
	b := e.broker(t, "a", func(o *redis.Options) { o.Now = clk.Now })
	// Entry i of n was added n-i hours ago.
	fill := func(t *testing.T, stream string, n int) {
		t.Helper()
		for i := range n {
			id := fmt.Sprintf("%d-0", clk.Now().Add(-time.Duration(n-i)*time.Hour).UnixMilli())
			if err := e.rdb.XAdd(ctx, &goredis.XAddArgs{Stream: stream, ID: id, Values: []string{"payload", "p"}}).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	// read delivers n new entries to group and acknowledges the first
	// acked of them (without deleting them): the others stay pending.
	read := func(t *testing.T, stream, group string, n, acked int64) {
		t.Helper()
		if err := e.rdb.XGroupCreateMkStream(ctx, stream, group, "0").Err(); err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		res, err := e.rdb.XReadGroup(ctx, &goredis.XReadGroupArgs{Group: group, Consumer: "c", Streams: []string{stream, ">"}, Count: n, Block: -1}).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range res[0].Messages[:acked] {
			if err := e.rdb.XAck(ctx, stream, group, m.ID).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	scenarios := []struct {
		name    string
		entries int
		setup   func(t *testing.T, stream string)
	}{
		{"2 pending, 6 unread", 8, func(t *testing.T, s string) { read(t, s, "conveyor", 2, 0) }},
		{"3 acked, 2 pending, 5 unread", 10, func(t *testing.T, s string) { read(t, s, "conveyor", 5, 3) }},
		{"no group", 6, func(*testing.T, string) {}},
		{"group read nothing", 6, func(t *testing.T, s string) { read(t, s, "conveyor", 0, 0) }},
		{"all read and acked", 6, func(t *testing.T, s string) { read(t, s, "conveyor", 6, 6) }},
		{"two groups, one behind", 10, func(t *testing.T, s string) {
			read(t, s, "conveyor", 8, 8)
			read(t, s, "other", 3, 2)
		}},
	}
	var options []broker.TrimOptions
	for _, unread := range []bool{false, true} {
		for _, o := range []broker.TrimOptions{
			{MaxLen: 1}, {MaxLen: 4}, {MaxLen: 100},
			{OlderThan: 720 * time.Hour}, {OlderThan: 4*time.Hour + 30*time.Minute}, {OlderThan: time.Millisecond},
		} {
			o.IncludeUnread = unread
			options = append(options, o)
		}
	}
	for si, sc := range scenarios {
		for oi, o := range options {
			t.Run(fmt.Sprintf("%s/%+v", sc.name, o), func(t *testing.T) {
				topic := fmt.Sprintf("s%d-o%d", si, oi)
				stream := e.key(topic, "stream")
				fill(t, stream, sc.entries)
				sc.setup(t, stream)
				dry, err := b.TrimDryRun(ctx, topic, o)
				if err != nil {
					t.Fatalf("TrimDryRun: %v", err)
				}
				if n := xlen(t, e.rdb, stream); n != int64(sc.entries) {
					t.Fatalf("the dry run changed the stream: %d entries, want %d", n, sc.entries)
				}
				n, err := b.Trim(ctx, topic, o)
				if err != nil {
					t.Fatalf("Trim: %v", err)
				}
				if dry != n {
					t.Errorf("TrimDryRun = %d, Trim removed %d", dry, n)
				}
				if again, err := b.TrimDryRun(ctx, topic, o); err != nil || again != 0 {
					t.Errorf("TrimDryRun after the trim = %d, %v; want 0 (a second trim removes nothing)", again, err)
				}
			})
		}
	}
}

// TestTrimDryRunCases pins the counts of the cases operators met: pending
// entries stop a trim, young entries are not older than 720h, and counting
// works across the batches of a long stream from both ends.
func TestTrimDryRunCases(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	clk := newClock()
	b := e.broker(t, "a", func(o *redis.Options) { o.Now = clk.Now })

	// 2 pending, 6 unread: the oldest entry is pending, nothing can go.
	for range 8 {
		xadd(t, e.rdb, e.key("pending", "stream"))
	}
	if err := e.rdb.XGroupCreate(ctx, e.key("pending", "stream"), "conveyor", "0").Err(); err != nil {
		t.Fatal(err)
	}
	readN(t, e.rdb, e.key("pending", "stream"), "conveyor", 2)
	for _, o := range []broker.TrimOptions{{MaxLen: 1}, {MaxLen: 1, IncludeUnread: true}, {OlderThan: time.Millisecond, IncludeUnread: true}} {
		if n, err := b.TrimDryRun(ctx, "pending", o); err != nil || n != 0 {
			t.Errorf("TrimDryRun(%+v) with the oldest entry pending = %d, %v; want 0", o, n, err)
		}
	}

	// Entries seconds old are not older than 720h.
	if n, err := b.TrimDryRun(ctx, "pending", broker.TrimOptions{OlderThan: 720 * time.Hour, IncludeUnread: true}); err != nil || n != 0 {
		t.Errorf("TrimDryRun(720h) of young entries = %d, %v; want 0", n, err)
	}

	// A long stream with no group: 2500 entries, one a millisecond; the cut
	// falls inside, so the count crosses batches from either end.
	stream := e.key("long", "stream")
	start := clk.Now().Add(-time.Hour).UnixMilli()
	pipe := e.rdb.Pipeline()
	for i := range 2500 {
		pipe.XAdd(ctx, &goredis.XAddArgs{Stream: stream, ID: fmt.Sprintf("%d-0", start+int64(i)), Values: []string{"payload", "p"}})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	for _, older := range []int64{1, 999, 1000, 1001, 1200, 1300, 1500, 1800, 2499, 2500, 2501} {
		// Entries with an ID below start+older are older than the cut.
		o := broker.TrimOptions{OlderThan: clk.Now().Sub(time.UnixMilli(start + older)), IncludeUnread: true}
		if n, err := b.TrimDryRun(ctx, "long", o); err != nil || n != min(older, 2500) {
			t.Errorf("TrimDryRun of a cut after %d of 2500 entries = %d, %v; want %d", older, n, err, min(older, 2500))
		}
	}
}

// readN delivers n new entries of stream to group without acknowledging
// them.
func readN(t testing.TB, rdb goredis.UniversalClient, stream, group string, n int64) {
	t.Helper()
	if err := rdb.XReadGroup(context.Background(), &goredis.XReadGroupArgs{Group: group, Consumer: "x", Streams: []string{stream, ">"}, Count: n, Block: -1}).Err(); err != nil {
		t.Fatal(err)
	}
}
