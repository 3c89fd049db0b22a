package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/conveyor-jobs/conveyor/broker"
)

// TestTopicPartitions: --count sets the count that every process reads
// from Redis, produce --key spreads jobs by key, the breakdown lists each
// partition and adds up to the topic; bad counts are usage errors.
func TestTopicPartitions(t *testing.T) {
	e, _ := redisEnv(t)
	inv := invocation{env: e}
	mustRun(t, exitOK, inv, "produce", "--topic", "chats", "--payload", `{}`)

	r := mustRun(t, exitOK, inv, "topic", "partitions", "--topic", "chats", "--count", "4")
	if want := "chats: 4 partitions (was 1); producers use them now, and workers drain the earlier partitions until they are empty\n"; r.stdout != want {
		t.Fatalf("set printed %q, want %q", r.stdout, want)
	}
	for _, key := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		mustRun(t, exitOK, inv, "produce", "--topic", "chats", "--payload", `{}`, "--key", key, "--count", "3")
	}

	r = mustRun(t, exitOK, inv, "topic", "partitions", "--topic", "chats", "--json")
	var got struct {
		Topic      string                 `json:"topic"`
		Partitions int                    `json:"partitions"`
		Breakdown  []broker.PartitionInfo `json:"breakdown"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("--json: %v\n%s", err, r.stdout)
	}
	var total, used, draining int64
	for _, p := range got.Breakdown {
		total += p.Length
		if p.Length > 0 {
			used++
		}
		if p.Draining {
			draining += p.Length
		}
	}
	if draining != 1 {
		t.Errorf("draining partitions hold %d jobs, want the 1 produced before the change: %+v", draining, got.Breakdown)
	}
	// 24 keyed jobs in the new layout; the job produced before the change
	// waits in the earlier one, listed while it drains.
	if got.Topic != "chats" || got.Partitions != 4 || total != 25 || used < 3 {
		t.Fatalf("breakdown: %+v (total %d, partitions used %d)", got, total, used)
	}

	// health shows the topic as one, all partitions added up.
	r = mustRun(t, exitOK, inv, "health", "--topic", "chats", "--json")
	var infos []broker.TopicInfo
	if err := json.Unmarshal([]byte(r.stdout), &infos); err != nil || len(infos) != 1 || infos[0].Length != 25 || infos[0].Partitions != 5 {
		t.Fatalf("health --json (err %v): want one topic of 25 jobs over 4 partitions and 1 draining:\n%s", err, r.stdout)
	}

	r = mustRun(t, exitOK, inv, "topic", "partitions", "--topic", "chats")
	if !strings.HasPrefix(r.stdout, "chats: 4 partitions\nPARTITION") || strings.Count(r.stdout, "\n") < 6 || !strings.Contains(r.stdout, "(draining)") {
		t.Fatalf("table:\n%s", r.stdout)
	}

	mustRun(t, exitUsage, inv, "topic", "partitions", "--topic", "chats", "--count", "0")
	mustRun(t, exitUsage, inv, "topic", "partitions", "--topic", "chats", "--count", "1025")
	mustRun(t, exitUsage, inv, "topic", "partitions", "--count", "2")
	r = mustRun(t, exitFail, inv, "topic", "partitions", "--topic", "chat", "--count", "2")
	if !strings.Contains(r.stderr, "did you mean chats") {
		t.Fatalf("unknown topic: %q", r.stderr)
	}
}
