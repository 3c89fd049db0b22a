package redis_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/redis"
	"github.com/conveyor-jobs/conveyor/internal/logtest"
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
	var logs logtest.Buffer
	b := e.broker(t, "w", func(o *redis.Options) { o.Logger = logs.TextLogger(nil) })
	for _, topic := range []string{"shared", "own"} {
		if _, err := b.Publish(ctx, broker.Message{Topic: topic, Payload: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		fetchN(t, b, []string{"shared", "own"}, 1)
	}
	out := logs.String()
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

// TestVanishedGroupIsLogged destroys the consumer group of a topic the
// broker reads, and deletes the stream of another: each group is recreated
// at the next fetch, with one error naming the topic and saying that jobs
// may run again.
func TestVanishedGroupIsLogged(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	var logs logtest.Buffer
	b := e.broker(t, "w", func(o *redis.Options) { o.Logger = logs.TextLogger(nil) })
	topics := []string{"destroyed", "deleted", "kept"}
	for _, topic := range topics {
		if _, err := b.Publish(ctx, broker.Message{Topic: topic, Payload: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	for range topics {
		fetchN(t, b, topics, 1)
	}
	if err := e.rdb.XGroupDestroy(ctx, e.key("destroyed", "stream"), redis.DefaultGroup).Err(); err != nil {
		t.Fatal(err)
	}
	if err := e.rdb.Del(ctx, e.key("deleted", "stream")).Err(); err != nil {
		t.Fatal(err)
	}
	// The in-flight job of the destroyed group runs again.
	got := map[string]bool{}
	deadline := time.Now().Add(10 * time.Second)
	for !got["destroyed"] && time.Now().Before(deadline) {
		ds, err := b.Fetch(ctx, topics, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			got[d.Job.Topic] = true
		}
	}
	if !got["destroyed"] {
		t.Fatal("the job of the destroyed group was not delivered again")
	}
	for range 3 { // later fetches log nothing more
		if _, err := b.Fetch(ctx, topics, 10); err != nil {
			t.Fatal(err)
		}
	}
	out := logs.String()
	const msg = "consumer group was missing"
	if n := strings.Count(out, msg); n != 2 {
		t.Fatalf("%d messages about a missing group, want 2 (one per topic):\n%s", n, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, msg) {
			continue
		}
		if !strings.Contains(line, "level=ERROR") || !strings.Contains(line, "may run again") ||
			!(strings.Contains(line, "topic=destroyed") || strings.Contains(line, "topic=deleted")) {
			t.Errorf("message should be an error naming the topic and saying jobs may run again: %s", line)
		}
	}
	if strings.Contains(out, "topic=kept") {
		t.Errorf("a topic whose group exists was reported:\n%s", out)
	}
}
