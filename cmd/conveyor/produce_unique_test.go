package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestProduceUnique: --unique-key publishes once; a second produce prints
// the holder's ID and exits 3; consuming the job (an ack) frees the key
// unless --unique-for keeps it.
func TestProduceUnique(t *testing.T) {
	e, _ := redisEnv(t)
	inv := invocation{env: e}
	r := mustRun(t, exitOK, inv, "produce", "-t", "reports", "--payload", `{"day":1}`, "--unique-key", "day-1")
	id := strings.TrimSpace(r.stdout)
	if !jobIDLine.MatchString(id) {
		t.Fatalf("produce printed %q, want one job ID", r.stdout)
	}
	r = mustRun(t, exitDuplicate, inv, "produce", "-t", "reports", "--payload", `{"day":1}`, "--unique-key", "day-1")
	if strings.TrimSpace(r.stdout) != id {
		t.Fatalf("duplicate produce printed %q, want the holder's ID %s", r.stdout, id)
	}
	if !strings.Contains(r.stderr, `duplicate unique key "day-1" of topic "reports": held by job `+id+"; nothing published") {
		t.Fatalf("stderr = %q", r.stderr)
	}
	r = mustRun(t, exitDuplicate, inv, "produce", "-t", "reports", "--payload", `{"day":1}`, "--unique-key", "day-1", "--json")
	var v struct {
		Count      int      `json:"count"`
		IDs        []string `json:"ids"`
		ExistingID string   `json:"existing_id"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || v.Count != 0 || len(v.IDs) != 0 || v.ExistingID != id {
		t.Fatalf("--json duplicate: %s (%v)", r.stdout, err)
	}

	mustRun(t, exitOK, inv, "consume", "-t", "reports", "--timeout", "10s")
	r = mustRun(t, exitOK, inv, "produce", "-t", "reports", "--payload", `{"day":1}`, "--unique-key", "day-1", "--unique-for", "1h")
	kept := strings.TrimSpace(r.stdout)
	if kept == id {
		t.Fatalf("produce after the ack returned the acked job's ID %s", id)
	}
	mustRun(t, exitOK, inv, "consume", "-t", "reports", "--timeout", "10s")
	r = mustRun(t, exitDuplicate, inv, "produce", "-t", "reports", "--payload", `{"day":1}`, "--unique-key", "day-1")
	if strings.TrimSpace(r.stdout) != kept {
		t.Fatalf("produce within --unique-for of an acked job printed %q, want %s", r.stdout, kept)
	}

	for _, args := range [][]string{
		{"--unique-for", "1h"},
		{"--unique-key", "k", "--count", "2"},
		{"--unique-key", "k", "--unique-for", "-1s"},
	} {
		mustRun(t, exitUsage, inv, append([]string{"produce", "-t", "reports", "--payload", "{}"}, args...)...)
	}
}
