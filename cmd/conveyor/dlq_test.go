package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// TestDLQMissingIDs checks that replay and purge with --id fail (exit 1)
// naming the IDs that are not dead letters, still handle the ones that
// are, and never touch the others; --dry-run says the same.
func TestDLQMissingIDs(t *testing.T) {
	e, _ := redisEnv(t)
	inv := invocation{env: e}
	deadLetters(t, e, "orchestrate", `{"n":1}`, `{"n":2}`, `{"n":3}`)
	ids := dlqIDs(t, inv, "orchestrate")

	// A dry run with one known and one unknown ID: lists the known one,
	// fails naming the other, changes nothing.
	r := mustRun(t, exitFail, inv, "dlq", "replay", "--topic", "orchestrate", "--id", ids[0], "--id", "0-1", "--dry-run")
	if !strings.Contains(r.stdout, "dry run: would replay 1 dead letter of orchestrate") || !strings.Contains(r.stdout, ids[0]) {
		t.Errorf("replay --dry-run stdout:\n%s", r.stdout)
	}
	if !strings.Contains(r.stderr, "conveyor: dead letter 0-1 not found in orchestrate.dlq") {
		t.Errorf("replay --dry-run stderr:\n%s", r.stderr)
	}
	if got := dlqIDs(t, inv, "orchestrate"); len(got) != 3 {
		t.Fatalf("after the dry run: %d dead letters, want 3", len(got))
	}

	// The real run replays the known one and fails naming the other.
	r = mustRun(t, exitFail, inv, "dlq", "replay", "--topic", "orchestrate", "--id", ids[0], "--id", "0-1")
	if strings.TrimSpace(r.stdout) != "replayed 1 dead letter to orchestrate" {
		t.Errorf("replay stdout: %q", r.stdout)
	}
	if !strings.Contains(r.stderr, "dead letter 0-1 not found in orchestrate.dlq") || !strings.Contains(r.stderr, "; replayed 1 dead letter\n") {
		t.Errorf("replay stderr:\n%s", r.stderr)
	}
	if got := dlqIDs(t, inv, "orchestrate"); !slices.Equal(got, ids[1:]) {
		t.Fatalf("after replay: dead letters %v, want %v", got, ids[1:])
	}

	// Only unknown IDs (one of them already replayed): nothing is purged,
	// in particular not every dead letter.
	r = mustRun(t, exitFail, inv, "dlq", "purge", "--topic", "orchestrate", "--id", ids[0], "--id", "0-2")
	if r.stdout != "" {
		t.Errorf("purge stdout: %q", r.stdout)
	}
	if want := "conveyor: dead letters " + ids[0] + ", 0-2 not found in orchestrate.dlq"; !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, "; nothing purged") {
		t.Errorf("purge stderr does not contain %q and %q:\n%s", want, "; nothing purged", r.stderr)
	}
	if got := dlqIDs(t, inv, "orchestrate"); !slices.Equal(got, ids[1:]) {
		t.Fatalf("after purging unknown IDs: dead letters %v, want %v", got, ids[1:])
	}

	// --json reports the missing IDs too.
	r = mustRun(t, exitFail, inv, "dlq", "purge", "--topic", "orchestrate", "--id", ids[1], "--id", "0-3", "--json")
	var out struct {
		Count   int
		Missing []string
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	if out.Count != 1 || !slices.Equal(out.Missing, []string{"0-3"}) {
		t.Errorf("purge --json = %+v", out)
	}
	if got := dlqIDs(t, inv, "orchestrate"); !slices.Equal(got, ids[2:]) {
		t.Fatalf("after purge: dead letters %v, want %v", got, ids[2:])
	}

	// The same ID twice counts once.
	r = mustRun(t, exitOK, inv, "dlq", "purge", "--topic", "orchestrate", "--id", ids[2], "--id", ids[2], "--dry-run")
	if !strings.Contains(r.stdout, "would purge 1 dead letter of orchestrate") {
		t.Errorf("purge --dry-run with a repeated ID:\n%s", r.stdout)
	}
}

// TestDLQAllEmpty checks that --all on a topic without dead letters succeeds
// and says so, with a hint when the namespace has no such topic.
func TestDLQAllEmpty(t *testing.T) {
	e, _ := redisEnv(t)
	inv := invocation{env: e}
	mustRun(t, exitOK, inv, "produce", "--topic", "known", "--payload", `{}`)
	hint := "hint: namespace " + e["REDIS_NAMESPACE"] + " holds nothing for topic"
	tests := []struct {
		args       []string
		want       string
		wantHint   bool
		wantStderr string
	}{
		{[]string{"replay", "--topic", "nosuch", "--all"}, "no dead letters in nosuch.dlq: nothing to replay", true, ""},
		{[]string{"purge", "--topic", "nosuch.dlq", "--all", "--dry-run"}, "dry run: no dead letters in nosuch.dlq: nothing to purge", true, ""},
		{[]string{"purge", "--topic", "known", "--all"}, "no dead letters in known.dlq: nothing to purge", false, ""},
		{[]string{"replay", "--topic", "known", "--all", "--dry-run"}, "dry run: no dead letters in known.dlq: nothing to replay", false, ""},
		{[]string{"replay", "--topic", "nosuch", "--id", "0-1"}, "", true, "dead letter 0-1 not found in nosuch.dlq"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code := exitOK
			if tt.wantStderr != "" {
				code = exitFail
			}
			r := mustRun(t, code, inv, append([]string{"dlq"}, tt.args...)...)
			if strings.TrimSpace(r.stdout) != tt.want {
				t.Errorf("stdout = %q, want %q", r.stdout, tt.want)
			}
			if got := strings.Contains(r.stderr, hint); got != tt.wantHint {
				t.Errorf("hint %q shown: %v, want %v; stderr:\n%s", hint, got, tt.wantHint, r.stderr)
			}
			if !strings.Contains(r.stderr, tt.wantStderr) {
				t.Errorf("stderr does not contain %q:\n%s", tt.wantStderr, r.stderr)
			}
		})
	}
}
