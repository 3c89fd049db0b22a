package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/redis"
)

// TestPauseResume: pause marks the topic paused for every worker (health
// shows it, a worker's Fetch gets none of its jobs), resume clears it; an
// unknown topic is refused with the close names; --topic is required.
func TestPauseResume(t *testing.T) {
	e, srv := redisEnv(t)
	inv := invocation{env: e}
	mustRun(t, exitOK, inv, "produce", "--topic", "orders", "--payload", `{}`)

	r := mustRun(t, exitOK, inv, "pause", "--topic", "orders")
	if want := "paused orders: no worker fetches its jobs until conveyor resume --topic orders\n"; r.stdout != want {
		t.Fatalf("pause printed %q, want %q", r.stdout, want)
	}
	r = mustRun(t, exitOK, inv, "health")
	if !strings.Contains(r.stdout, "orders (PAUSED)") {
		t.Fatalf("health does not mark the paused topic:\n%s", r.stdout)
	}
	r = mustRun(t, exitOK, inv, "health", "--topic", "orders", "--json")
	var infos []broker.TopicInfo
	if err := json.Unmarshal([]byte(r.stdout), &infos); err != nil || len(infos) != 1 || !infos[0].Paused {
		t.Fatalf("health --json of a paused topic (err %v):\n%s", err, r.stdout)
	}
	if !strings.Contains(r.stdout, `"paused": true`) {
		t.Fatalf(`health --json lacks "paused": true:\n%s`, r.stdout)
	}

	// A worker of the namespace fetches nothing of the paused topic.
	b, err := redis.New(srv.Client(t), &redis.Options{Namespace: e["REDIS_NAMESPACE"], Block: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ds, err := b.Fetch(context.Background(), []string{"orders"}, 10)
	if err != nil || len(ds) != 0 {
		t.Fatalf("Fetch of a paused topic: %d jobs, err %v", len(ds), err)
	}

	r = mustRun(t, exitOK, inv, "resume", "--topic", "orders", "--json")
	if strings.TrimSpace(r.stdout) != `{
  "topic": "orders",
  "paused": false
}` {
		t.Fatalf("resume --json printed %q", r.stdout)
	}
	r = mustRun(t, exitOK, inv, "health", "--topic", "orders", "--json")
	if strings.Contains(r.stdout, "paused") {
		t.Fatalf("health --json still says paused after resume:\n%s", r.stdout)
	}
	ds, err = b.Fetch(context.Background(), []string{"orders"}, 10)
	if err != nil || len(ds) != 1 {
		t.Fatalf("Fetch after resume: %d jobs, err %v", len(ds), err)
	}

	r = mustRun(t, exitFail, inv, "pause", "--topic", "order")
	if !strings.Contains(r.stderr, "holds no topic order (did you mean orders?)") {
		t.Fatalf("pause of an unknown topic:\n%s", r.stderr)
	}
	mustRun(t, exitUsage, inv, "resume")
}
