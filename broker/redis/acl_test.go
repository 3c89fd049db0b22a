package redis_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/redis"
	"github.com/conveyor-jobs/conveyor/internal/logtest"
	"github.com/conveyor-jobs/conveyor/internal/redistest"
)

// TestACLRefusalNamesThePermission runs the broker as a Redis ACL user that
// lacks one command used inside a script and one used directly: each error
// starts the explanation with NOPERM and names the command to grant.
func TestACLRefusalNamesThePermission(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Restartable()) // own server: ACL SETUSER must not touch a shared one
	ctx := context.Background()
	const user, pass = "limited", "acl-Passw0rd-7"
	args := []any{"ACL", "SETUSER", user, "reset", "on", ">" + pass, "~" + srv.Namespace + ":*", "+@all", "-xinfo|groups", "-zrange"}
	if err := srv.Client(t).Do(ctx, args...).Err(); err != nil {
		t.Fatalf("ACL SETUSER: %v", err)
	}
	b, err := redis.Open(fmt.Sprintf("redis://%s:%s@%s", user, pass, srv.Addr()), &redis.Options{Namespace: srv.Namespace})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.Publish(ctx, broker.Message{Topic: "t", Payload: []byte("p"), Delay: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Publish(ctx, broker.Message{Topic: "t", Payload: []byte("p")}); err != nil {
		t.Fatal(err)
	}
	_, err = b.Trim(ctx, "t", broker.TrimOptions{MaxLen: 1, IncludeUnread: true})
	for _, want := range []string{"NOPERM", "XINFO GROUPS", "+xinfo|groups", "trim script", "can't run this command"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Trim error %v does not say %q", err, want)
		}
	}
	_, err = b.DelayedJobs(ctx, "t", 10)
	for _, want := range []string{"NOPERM", "ZRANGE", "+zrange"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("DelayedJobs error %v does not say %q", err, want)
		}
	}
}

// TestACLTopicsWithoutScan checks that a Redis user not allowed to run SCAN
// still gets the registered topics, with one warning that says what to
// grant.
func TestACLTopicsWithoutScan(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Restartable()) // own server: ACL SETUSER must not touch a shared one
	ctx := context.Background()
	const user, pass = "noscan", "acl-Passw0rd-8"
	args := []any{"ACL", "SETUSER", user, "reset", "on", ">" + pass, "~" + srv.Namespace + ":*", "+@all", "-scan"}
	if err := srv.Client(t).Do(ctx, args...).Err(); err != nil {
		t.Fatalf("ACL SETUSER: %v", err)
	}
	var logs logtest.Buffer
	b, err := redis.Open(fmt.Sprintf("redis://%s:%s@%s", user, pass, srv.Addr()), &redis.Options{Namespace: srv.Namespace, Logger: logs.TextLogger(nil), DiscoverInterval: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.Publish(ctx, broker.Message{Topic: "registered", Payload: []byte("p")}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		ts, err := b.Topics(ctx)
		if err != nil || !slices.Equal(ts, []string{"registered"}) {
			t.Fatalf("Topics without SCAN = %v, %v; want [registered]", ts, err)
		}
	}
	if n := strings.Count(logs.String(), "grant +scan"); n != 1 {
		t.Errorf("%d warnings about SCAN, want 1:\n%s", n, logs.String())
	}
}
