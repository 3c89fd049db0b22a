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
	"github.com/conveyor-jobs/conveyor/internal/logtest"
	"github.com/conveyor-jobs/conveyor/job"
)

// TestJobLimitsFromRawProducer reads max_attempts and timeout_ms as any
// producer may write them: valid values are kept, values above their bound
// are clamped and anything else is ignored, each with a warning; the job is
// delivered either way.
func TestJobLimitsFromRawProducer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	var logs logtest.Buffer
	b := e.broker(t, "a", func(o *redis.Options) { o.Logger = logs.TextLogger(nil) })
	maxMS := broker.MaxTimeout.Milliseconds()
	tests := []struct {
		maxAttempts, timeoutMS string
		wantMax                int
		wantTimeout            time.Duration
		warning                string
	}{
		{"5", "2500", 5, 2500 * time.Millisecond, ""},
		{"-3", "0", 0, 0, `bad max_attempts \"-3\", ignored: the retry policy decides`},
		{"lots", "-1", 0, 0, `bad timeout_ms \"-1\", ignored: the timeout middleware decides`},
		{"99999999999999999999", "9223372036854775807", job.MaxAttempt, broker.MaxTimeout,
			fmt.Sprintf(`timeout_ms \"9223372036854775807\" above %d, using %d`, maxMS, maxMS)},
		{"1000001", "1", job.MaxAttempt, time.Millisecond, fmt.Sprintf(`max_attempts \"1000001\" above %d, using %d`, job.MaxAttempt, job.MaxAttempt)},
	}
	for _, tt := range tests {
		if err := e.rdb.XAdd(ctx, &goredis.XAddArgs{Stream: e.key("t", "stream"),
			Values: []string{"payload", "p", "max_attempts", tt.maxAttempts, "timeout_ms", tt.timeoutMS}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	ds := fetchN(t, b, []string{"t"}, len(tests))
	for i, tt := range tests {
		if j := ds[i].Job; j.MaxAttempts != tt.wantMax || j.Timeout != tt.wantTimeout {
			t.Errorf("max_attempts %q, timeout_ms %q: MaxAttempts %d, Timeout %v, want %d, %v",
				tt.maxAttempts, tt.timeoutMS, j.MaxAttempts, j.Timeout, tt.wantMax, tt.wantTimeout)
		}
	}
	if err := b.Ack(ctx, ds...); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		if tt.warning != "" && !strings.Contains(logs.String(), tt.warning) {
			t.Errorf("no warning %s in the log:\n%s", tt.warning, logs.String())
		}
	}
}

// TestJobLimitsOnTheWire pins the fields a published job's limits are
// written as, for the stream and for the delayed set.
func TestJobLimitsOnTheWire(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	b := e.broker(t, "a", nil)
	m := broker.Message{Topic: "t", Payload: []byte("p"), MaxAttempts: 3, Timeout: 1500*time.Millisecond + time.Microsecond}
	if _, err := b.Publish(ctx, m); err != nil {
		t.Fatal(err)
	}
	entries, err := e.rdb.XRange(ctx, e.key("t", "stream"), "-", "+").Result()
	if err != nil || len(entries) != 1 {
		t.Fatalf("XRANGE = %v, %v", entries, err)
	}
	if v := entries[0].Values; v["max_attempts"] != "3" || v["timeout_ms"] != "1501" {
		t.Errorf("stream entry %v, want max_attempts 3 and timeout_ms 1501 (rounded up)", v)
	}
	m.Delay = time.Hour
	if _, err := b.Publish(ctx, m); err != nil {
		t.Fatal(err)
	}
	members, err := e.rdb.ZRange(ctx, e.key("t", "delayed"), 0, -1).Result()
	if err != nil || len(members) != 1 {
		t.Fatalf("ZRANGE = %v, %v", members, err)
	}
	if !strings.Contains(members[0], "12:max_attempts,1:3,") || !strings.Contains(members[0], "10:timeout_ms,4:1501,") {
		t.Errorf("delayed member %q lacks max_attempts 3 and timeout_ms 1501", members[0])
	}
}
