package redis_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/redis"
)

// TestOtherGroupOnStreamIsAnError: a second consumer group on a topic's
// stream would lose jobs (an acknowledgement deletes the entry for every
// group), so the broker says so, once, naming the other group; a stream
// read by its own group alone gets no such message.
func TestOtherGroupOnStreamIsAnError(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	if err := e.rdb.XGroupCreateMkStream(ctx, e.key("shared", "stream"), "analytics", "0").Err(); err != nil {
		t.Fatal(err)
	}
	var (
		mu   sync.Mutex
		logs strings.Builder
	)
	b := e.broker(t, "w", func(o *redis.Options) {
		o.Logger = slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))
	})
	for _, topic := range []string{"shared", "own"} {
		if _, err := b.Publish(ctx, broker.Message{Topic: topic, Payload: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		fetchN(t, b, []string{"shared", "own"}, 1)
	}
	mu.Lock()
	out := logs.String()
	mu.Unlock()
	if n := strings.Count(out, "another consumer group reads this topic's stream"); n != 1 {
		t.Fatalf("%d messages about another group, want 1:\n%s", n, out)
	}
	if !strings.Contains(out, "level=ERROR") || !strings.Contains(out, "analytics") || !strings.Contains(out, e.key("shared", "stream")) {
		t.Errorf("the message should be an error naming the stream and the other group:\n%s", out)
	}
	if strings.Contains(out, e.key("own", "stream")) {
		t.Errorf("a stream read by its own group alone was reported:\n%s", out)
	}
}
