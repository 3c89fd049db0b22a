package redis_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/redis"
)

// xadd adds one entry with a payload to key, as a producer other than
// conveyor does.
func xadd(t testing.TB, rdb goredis.UniversalClient, key string) {
	t.Helper()
	if err := rdb.XAdd(context.Background(), &goredis.XAddArgs{Stream: key, Values: []string{"payload", `{"x":1}`}}).Err(); err != nil {
		t.Fatal(err)
	}
}

// listTopics returns b.Topics, failing the test on an error.
func listTopics(t testing.TB, b *redis.Broker) []string {
	t.Helper()
	ts, err := b.Topics(context.Background())
	if err != nil {
		t.Fatalf("Topics: %v", err)
	}
	return ts
}

// TestTopicsDiscoversRawStreams writes streams with XADD only, as the manual's
// redis-cli producer does, and checks that the topic listing shows them, with
// their length and lag, and registers them.
func TestTopicsDiscoversRawStreams(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	xadd(t, e.rdb, e.key("orchestrate", "stream"))
	xadd(t, e.rdb, e.key("orchestrate", "stream"))
	xadd(t, e.rdb, e.key("dead-only", "dlq"))         // only a dead-letter stream
	xadd(t, e.rdb, e.ns+":{deeper}:dlq:dlq")          // dead letters of dead letters
	xadd(t, e.rdb, e.ns+":{odd}:other")               // not a topic's key
	xadd(t, e.rdb, e.ns+":{named.dlq}:stream")        // no topic reads this key
	xadd(t, e.rdb, e.ns+"x:{other-namespace}:stream") // another namespace
	if err := e.rdb.ZAdd(ctx, e.key("zset-only", "delayed"), goredis.Z{Score: 1, Member: "m"}).Err(); err != nil {
		t.Fatal(err)
	}
	b := e.broker(t, "a", nil)
	if _, err := b.Publish(ctx, broker.Message{Topic: "registered", Payload: []byte("p")}); err != nil {
		t.Fatal(err)
	}

	want := []string{"dead-only", "deeper", "orchestrate", "registered"}
	if got := listTopics(t, b); !slices.Equal(got, want) {
		t.Fatalf("Topics = %v, want %v", got, want)
	}
	info, err := b.Inspect(ctx, "orchestrate")
	if err != nil {
		t.Fatal(err)
	}
	if info.Length != 2 || info.Lag != 2 {
		t.Errorf("Inspect(orchestrate): length %d, lag %d; want 2 and 2", info.Length, info.Lag)
	}
	if info, err := b.Inspect(ctx, "dead-only"); err != nil || info.DeadLetters != 1 {
		t.Errorf("Inspect(dead-only) = %+v, %v; want 1 dead letter", info, err)
	}
	if dls, err := b.DeadLetters(ctx, "dead-only", "", 0); err != nil || len(dls) != 1 {
		t.Errorf("DeadLetters(dead-only) = %d, %v; want 1", len(dls), err)
	}

	// What the scan found is registered: a broker that never scans lists it.
	reg, err := e.rdb.SMembers(ctx, e.ns+":topics").Result()
	if slices.Sort(reg); err != nil || !slices.Equal(reg, want) {
		t.Errorf("registry = %v, %v; want %v", reg, err, want)
	}
	noScan := e.broker(t, "b", func(o *redis.Options) { o.DiscoverInterval = -1 })
	if got := listTopics(t, noScan); !slices.Equal(got, want) {
		t.Errorf("Topics without scanning = %v, want %v", got, want)
	}
}

// TestTopicsDiscoverInterval checks that the keyspace is scanned at most once
// per DiscoverInterval, and again after it.
func TestTopicsDiscoverInterval(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	clk := newClock()
	b := e.broker(t, "a", func(o *redis.Options) { o.DiscoverInterval = time.Minute; o.Now = clk.Now })
	xadd(t, e.rdb, e.key("first", "stream"))
	if got := listTopics(t, b); !slices.Equal(got, []string{"first"}) {
		t.Fatalf("Topics = %v, want [first]", got)
	}
	xadd(t, e.rdb, e.key("second", "stream"))
	if got := listTopics(t, b); !slices.Equal(got, []string{"first"}) {
		t.Fatalf("Topics within the interval = %v, want [first] (no new scan)", got)
	}
	clk.Advance(time.Minute)
	if got := listTopics(t, b); !slices.Equal(got, []string{"first", "second"}) {
		t.Fatalf("Topics after the interval = %v, want [first second]", got)
	}
}

// TestTopicsNamespaceGlob checks that characters special in a SCAN pattern
// are matched literally in the namespace.
func TestTopicsNamespaceGlob(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ns := e.ns + "*[1]?"
	xadd(t, e.rdb, ns+":{mine}:stream")
	xadd(t, e.rdb, e.ns+"x1y:{not-mine}:stream") // matched by the unescaped pattern
	b := e.broker(t, "a", func(o *redis.Options) { o.Namespace = ns })
	if got := listTopics(t, b); !slices.Equal(got, []string{"mine"}) {
		t.Fatalf("Topics = %v, want [mine]", got)
	}
}

// TestFetchRejectsTopicsThatBreakHashTags: topic names with '{' or '}' (or
// empty) would put a topic's keys in different Cluster slots; Fetch rejects
// them with an error naming the topic, and ValidateTopic states the rule.
func TestTopicsThatBreakHashTagsAreRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.broker(t, "a", nil)
	for _, tc := range []struct {
		topic string
		ok    bool
	}{
		{"orders", true},
		{"orders.dlq", true},
		{"a:b-c_d", true},
		{"", false},
		{"{}x}", false},
		{"x{y", false},
		{"y}", false},
	} {
		err := redis.ValidateTopic(tc.topic)
		if (err == nil) != tc.ok {
			t.Fatalf("ValidateTopic(%q) = %v, want ok=%v", tc.topic, err, tc.ok)
		}
		_, ferr := b.Fetch(context.Background(), []string{"orders", tc.topic}, 1)
		_, perr := b.Publish(context.Background(), broker.Message{Topic: tc.topic, Payload: []byte("{}")})
		if tc.ok {
			if ferr != nil || perr != nil {
				t.Fatalf("topic %q: Fetch: %v, Publish: %v", tc.topic, ferr, perr)
			}
			continue
		}
		if tc.topic == "" { // Publish names the message rather than the empty topic
			if !errors.Is(perr, broker.ErrInvalidMessage) {
				t.Fatalf("Publish to an empty topic: %v", perr)
			}
			perr = ferr
		}
		for _, err := range []error{err, ferr, perr} {
			if !errors.Is(err, broker.ErrInvalidMessage) || !strings.Contains(err.Error(), fmt.Sprintf("%q", tc.topic)) || !strings.Contains(err.Error(), "'{'") {
				t.Fatalf("topic %q: error %v, want ErrInvalidMessage naming the topic and the rule", tc.topic, err)
			}
		}
	}
}
