package main

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/conveyor-jobs/conveyor/broker"
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
// and says so, and that a topic the namespace does not hold is an error.
func TestDLQAllEmpty(t *testing.T) {
	e, _ := redisEnv(t)
	inv := invocation{env: e}
	mustRun(t, exitOK, inv, "produce", "--topic", "known", "--payload", `{}`)
	noTopic := "namespace " + e["REDIS_NAMESPACE"] + " holds no topic nosuch"
	tests := []struct {
		args       []string
		want       string
		wantStderr string
	}{
		{[]string{"replay", "--topic", "nosuch", "--all"}, "", noTopic},
		{[]string{"purge", "--topic", "nosuch.dlq", "--all", "--dry-run"}, "", noTopic},
		{[]string{"purge", "--topic", "known", "--all"}, "no dead letters in known.dlq: nothing to purge", ""},
		{[]string{"replay", "--topic", "known", "--all", "--dry-run"}, "dry run: no dead letters in known.dlq: nothing to replay", ""},
		{[]string{"replay", "--topic", "nosuch", "--id", "0-1"}, "", noTopic},
		{[]string{"replay", "--topic", "known", "--id", "0-1"}, "", "dead letter 0-1 not found in known.dlq"},
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
			if !strings.Contains(r.stderr, tt.wantStderr) {
				t.Errorf("stderr does not contain %q:\n%s", tt.wantStderr, r.stderr)
			}
		})
	}
}

// TestPayloadNotJSON checks that dlq show, dlq list --json and consume tell a
// payload that is not JSON from one that is: the JSON string "not json" and
// the bytes not json differ in text and in --json, bytes that are not UTF-8
// come in base64, and an empty payload is marked empty.
func TestPayloadNotJSON(t *testing.T) {
	e, _ := redisEnv(t)
	inv := invocation{env: e}
	payloads := []string{`"not json"`, `not json`, "\xff\x00a", "two\nlines", ""}
	deadLetters(t, e, "mixed", payloads...)

	type want struct {
		payload, text, base64 *string // the --json fields, nil when absent
		show                  string  // what dlq show prints from "payload"
		consume               string  // what consume prints from "  payload"
	}
	str := func(s string) *string { return &s }
	wants := []want{
		{payload: str(`"not json"`), show: "payload:\n  \"not json\"\n", consume: "  payload: \"not json\"\n"},
		{text: str("not json"), show: "payload (not JSON, 8 bytes):\n  not json\n", consume: "  payload (not JSON, 8 bytes): not json\n"},
		{base64: str("/wBh"), show: "payload (not JSON, not UTF-8, 3 bytes, base64):\n  /wBh\n", consume: "  payload (not JSON, not UTF-8, 3 bytes, base64): /wBh\n"},
		{text: str("two\nlines"), show: "payload (not JSON, 9 bytes):\n  two\n  lines\n", consume: "  payload (not JSON, 9 bytes): two\n    lines\n"},
		{text: str(""), show: "payload (empty)\n", consume: "  payload (empty)\n"},
	}

	r := mustRun(t, exitOK, inv, "dlq", "list", "--topic", "mixed", "--json")
	var views []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &views); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	if len(views) != len(payloads) {
		t.Fatalf("dlq list --json: %d dead letters, want %d", len(views), len(payloads))
	}
	// field returns the JSON text of field key of dead letter i's job.
	field := func(i int, key string) *string {
		v, ok := views[i]["job"].(map[string]any)[key]
		if !ok {
			return nil
		}
		if key == "payload" {
			b, _ := json.Marshal(v)
			return str(string(b))
		}
		s, _ := v.(string)
		return &s
	}
	show := func(p *string) string {
		if p == nil {
			return "absent"
		}
		return strconv.Quote(*p)
	}
	for i, w := range wants {
		for _, f := range []struct {
			key  string
			want *string
		}{{"payload", w.payload}, {"payload_text", w.text}, {"payload_base64", w.base64}} {
			if got := field(i, f.key); show(got) != show(f.want) {
				t.Errorf("dlq list --json, payload %q: %s = %s, want %s", payloads[i], f.key, show(got), show(f.want))
			}
		}
		id := views[i]["id"].(string)
		r := mustRun(t, exitOK, inv, "dlq", "show", "--topic", "mixed", "--id", id)
		if _, got, _ := strings.Cut(r.stdout, "\npayload"); "payload"+got != w.show {
			t.Errorf("dlq show, payload %q: printed %q, want %q", payloads[i], "payload"+got, w.show)
		}
		r = mustRun(t, exitOK, inv, "dlq", "show", "--topic", "mixed", "--id", id, "--json")
		var shown []map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &shown); err != nil || len(shown) != 1 {
			t.Fatalf("dlq show --json: %v: %s", err, r.stdout)
		}
		if got, want := fmt.Sprint(shown[0]["job"]), fmt.Sprint(views[i]["job"]); got != want {
			t.Errorf("dlq show --json, payload %q: job %s, dlq list --json says %s", payloads[i], got, want)
		}
	}

	// consume prints the same payloads the same way, in text and in JSON.
	b := openBroker(t, e, "producer")
	for range 2 {
		for _, p := range payloads {
			if _, err := b.Publish(t.Context(), broker.Message{Topic: "raw", Payload: []byte(p)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	r = mustRun(t, exitOK, inv, "consume", "--topic", "raw", "--count", "5", "--timeout", "10s")
	got := regexp.MustCompile(`(?m)^  payload(.|\n    )*\n`).FindAllString(r.stdout, -1)
	if len(got) != len(wants) {
		t.Fatalf("consume printed %d payloads, want %d:\n%s", len(got), len(wants), r.stdout)
	}
	for i, w := range wants {
		if got[i] != w.consume {
			t.Errorf("consume, payload %q: printed %q, want %q", payloads[i], got[i], w.consume)
		}
	}
	r = mustRun(t, exitOK, inv, "consume", "--topic", "raw", "--count", "5", "--timeout", "10s", "--json")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != len(wants) {
		t.Fatalf("consume --json printed %d lines, want %d:\n%s", len(lines), len(wants), r.stdout)
	}
	for i, line := range lines {
		var job map[string]any
		if err := json.Unmarshal([]byte(line), &job); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		for _, key := range []string{"payload", "payload_text", "payload_base64"} {
			if got, want := fmt.Sprint(job[key]), fmt.Sprint(views[i]["job"].(map[string]any)[key]); got != want {
				t.Errorf("consume --json, payload %q: %s = %s, dlq list --json says %s", payloads[i], key, got, want)
			}
		}
	}
}
