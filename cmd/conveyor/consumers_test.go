package main

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
)

// groupConsumers returns the consumers of topic's group conveyor that
// consumers list --json reports.
func groupConsumers(t *testing.T, inv invocation, topic string) map[string]consumerRowJSON {
	t.Helper()
	r := mustRun(t, exitOK, inv, "consumers", "list", "--topic", topic, "--json")
	var rows []consumerRowJSON
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	out := map[string]consumerRowJSON{}
	for _, row := range rows {
		if row.Group == "conveyor" {
			out[row.Name] = row
		}
	}
	return out
}

type consumerRowJSON struct {
	Topic       string   `json:"topic"`
	Group       string   `json:"group"`
	Name        string   `json:"name"`
	Pending     int64    `json:"pending"`
	IdleSeconds *float64 `json:"idle_seconds"`
}

// TestConsumeLeavesNoConsumer checks that consume removes its consumer from
// the group when it exits holding nothing, and keeps it while it holds a
// job.
func TestConsumeLeavesNoConsumer(t *testing.T) {
	e, _ := redisEnv(t)
	inv := invocation{env: e}
	mustRun(t, exitOK, inv, "produce", "--topic", "orchestrate", "--payload", `{}`, "--count", "2")
	mustRun(t, exitOK, inv, "consume", "--topic", "orchestrate", "--timeout", "10s")
	if cs := groupConsumers(t, inv, "orchestrate"); len(cs) != 0 {
		t.Fatalf("consumers after consume: %v, want none", cs)
	}
	// The same consumer name holding a job (a consume whose acknowledgement
	// failed, say): kept, so that the job stays pending and is recovered.
	fetch(t, openBroker(t, e, e["REDIS_CONSUMER"]), "orchestrate", 1)
	mustRun(t, exitFail, inv, "consume", "--topic", "orchestrate", "--timeout", "100ms")
	if c, ok := groupConsumers(t, inv, "orchestrate")[e["REDIS_CONSUMER"]]; !ok || c.Pending != 1 {
		t.Fatalf("consumer holding a job: %+v (listed %v), want kept with 1 pending", c, ok)
	}
}

// TestConsumersPrune checks that prune deletes only the consumers of the
// group that hold nothing and have been idle for --idle, and that
// --dry-run deletes none.
func TestConsumersPrune(t *testing.T) {
	e, _ := redisEnv(t)
	inv := invocation{env: e}
	ctx := t.Context()
	idle := openBroker(t, e, "gone-worker")
	busy := openBroker(t, e, "busy-worker")
	for range 2 {
		if _, err := idle.Publish(ctx, broker.Message{Topic: "orchestrate", Payload: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := idle.Ack(ctx, fetch(t, idle, "orchestrate", 1)...); err != nil {
		t.Fatal(err)
	}
	fetch(t, busy, "orchestrate", 1) // held

	// Nobody has been idle for an hour.
	r := mustRun(t, exitOK, inv, "consumers", "prune", "--idle", "1h")
	if !strings.Contains(r.stdout, "pruned 0 consumers of group conveyor") {
		t.Errorf("prune --idle 1h:\n%s", r.stdout)
	}
	// Wait (polling, no sleep) until the idle consumer has been idle 1ms.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c := groupConsumers(t, inv, "orchestrate")["gone-worker"]
		if c.IdleSeconds != nil && *c.IdleSeconds >= 0.001 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gone-worker never idle: %+v", c)
		}
	}
	r = mustRun(t, exitOK, inv, "consumers", "prune", "--idle", "1ms", "--dry-run")
	if !strings.Contains(r.stdout, "dry run: would prune 1 consumer") || !strings.Contains(r.stdout, "gone-worker") || strings.Contains(r.stdout, "busy-worker") {
		t.Errorf("prune --dry-run:\n%s", r.stdout)
	}
	if cs := groupConsumers(t, inv, "orchestrate"); len(cs) != 2 {
		t.Fatalf("after the dry run: consumers %v, want both", cs)
	}
	r = mustRun(t, exitOK, inv, "consumers", "prune", "--idle", "1ms", "--json")
	var out struct {
		Count     int
		Consumers []consumerRowJSON
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatal(err)
	}
	if out.Count != 1 || len(out.Consumers) != 1 || out.Consumers[0].Name != "gone-worker" || out.Consumers[0].IdleSeconds == nil {
		t.Errorf("prune --json: %+v", out)
	}
	cs := groupConsumers(t, inv, "orchestrate")
	if names := slices.Sorted(maps.Keys(cs)); !slices.Equal(names, []string{"busy-worker"}) {
		t.Errorf("after prune: consumers %v, want busy-worker only", names)
	}
	r = mustRun(t, exitOK, inv, "consumers", "list")
	if !strings.Contains(r.stdout, "busy-worker") || !strings.Contains(r.stdout, "TOPIC") {
		t.Errorf("consumers list:\n%s", r.stdout)
	}
	mustRun(t, exitUsage, inv, "consumers", "prune", "--idle", "0s")
	mustRun(t, exitFail, inv, "consumers", "prune", "--topic", "orchestrat")
}
