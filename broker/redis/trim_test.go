package redis_test

import (
	"context"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/broker"
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
