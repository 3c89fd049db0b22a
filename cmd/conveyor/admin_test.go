package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/redis"
	"github.com/conveyor-jobs/conveyor/broker/redis/redistest"
	"github.com/conveyor-jobs/conveyor/job"
)

// openBroker opens a Redis broker on e's URL and namespace, closed when the
// test ends.
func openBroker(t *testing.T, e env, consumer string) *redis.Broker {
	t.Helper()
	b, err := redis.Open(e["REDIS_URL"], &redis.Options{Namespace: e["REDIS_NAMESPACE"], Consumer: consumer})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// fetch fetches n jobs of topic, waiting up to 10s.
func fetch(t *testing.T, b broker.Broker, topic string, n int) []*broker.Delivery {
	t.Helper()
	var out []*broker.Delivery
	deadline := time.Now().Add(10 * time.Second)
	for len(out) < n {
		if time.Now().After(deadline) {
			t.Fatalf("fetched %d of %d jobs of %s", len(out), n, topic)
		}
		ds, err := b.Fetch(t.Context(), []string{topic}, n-len(out))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ds...)
	}
	return out
}

// deadLetters publishes payloads to topic and dead-letters them as a worker
// would, with error text "boom <i>".
func deadLetters(t *testing.T, e env, topic string, payloads ...string) {
	t.Helper()
	b := openBroker(t, e, "dead-letterer")
	for _, p := range payloads {
		if _, err := b.Publish(t.Context(), broker.Message{Topic: topic, Payload: []byte(p), Headers: map[string]string{"tenant": "acme"}}); err != nil {
			t.Fatal(err)
		}
	}
	for i, d := range fetch(t, b, topic, len(payloads)) {
		f := job.FailureOf(&d.Job, errors.New("boom "+strings.Repeat("x", i*40)), job.ReasonExhausted, time.Now())
		if err := b.DeadLetter(t.Context(), d, f); err != nil {
			t.Fatal(err)
		}
	}
}

// dlqIDs returns the dead-letter IDs dlq list --json prints.
func dlqIDs(t *testing.T, inv invocation, topic string) []string {
	t.Helper()
	r := mustRun(t, exitOK, inv, "dlq", "list", "--topic", topic, "--json")
	var views []deadLetterView
	if err := json.Unmarshal([]byte(r.stdout), &views); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	ids := make([]string, len(views))
	for i, v := range views {
		ids[i] = v.ID
	}
	return ids
}

func TestDLQ(t *testing.T) {
	e, _ := redisEnv(t)
	inv := invocation{env: e}
	deadLetters(t, e, "orchestrate", `{"prompt":"one"}`, `{"prompt":"two","nested":{"k":[1,2]}}`, `not json`)

	r := mustRun(t, exitOK, inv, "dlq", "list", "--topic", "orchestrate")
	golden(t, "dlq-list", r.stdout)
	ids := dlqIDs(t, inv, "orchestrate.dlq") // the .dlq form is accepted too
	if len(ids) != 3 {
		t.Fatalf("dlq list: %d dead letters, want 3", len(ids))
	}

	r = mustRun(t, exitOK, inv, "dlq", "show", "--topic", "orchestrate", "--id", ids[1])
	golden(t, "dlq-show", r.stdout)
	mustRun(t, exitFail, inv, "dlq", "show", "--topic", "orchestrate", "--id", "0-1")

	// Dry runs change nothing.
	r = mustRun(t, exitOK, inv, "dlq", "replay", "--topic", "orchestrate", "--all", "--dry-run")
	if !strings.Contains(r.stdout, "dry run: would replay 3 dead letters of orchestrate") {
		t.Fatalf("replay --dry-run:\n%s", r.stdout)
	}
	mustRun(t, exitUsage, inv, "dlq", "replay", "--topic", "orchestrate")
	mustRun(t, exitUsage, inv, "dlq", "purge", "--topic", "orchestrate")
	mustRun(t, exitUsage, inv, "dlq", "purge", "--topic", "orchestrate", "--all", "--id", ids[0])
	if got := dlqIDs(t, inv, "orchestrate"); len(got) != 3 {
		t.Fatalf("after dry runs: %d dead letters", len(got))
	}

	// Replay one: it is back on the topic as attempt 1, without failure.
	r = mustRun(t, exitOK, inv, "dlq", "replay", "--topic", "orchestrate", "--id", ids[0])
	if strings.TrimSpace(r.stdout) != "replayed 1 dead letter to orchestrate" {
		t.Fatalf("replay: %q", r.stdout)
	}
	r = mustRun(t, exitOK, inv, "consume", "--topic", "orchestrate", "--json", "--timeout", "10s")
	var v jobView
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatal(err)
	}
	if v.Attempt != 1 || v.Failure != nil || string(v.Payload) != `{"prompt":"one"}` || v.Headers["tenant"] != "acme" {
		t.Fatalf("replayed job = %+v", v)
	}

	r = mustRun(t, exitOK, inv, "dlq", "purge", "--topic", "orchestrate", "--all", "--dry-run", "--json")
	if !strings.Contains(r.stdout, `"count": 2`) {
		t.Fatalf("purge --dry-run --json:\n%s", r.stdout)
	}
	r = mustRun(t, exitOK, inv, "dlq", "purge", "--topic", "orchestrate", "--all", "--yes")
	if strings.TrimSpace(r.stdout) != "purged 2 dead letters of orchestrate" {
		t.Fatalf("purge: %q", r.stdout)
	}
	r = mustRun(t, exitOK, inv, "dlq", "list", "--topic", "orchestrate")
	if strings.TrimSpace(r.stdout) != "no dead letters for orchestrate" {
		t.Fatalf("list after purge: %q", r.stdout)
	}
}

func TestDLQReplayAll(t *testing.T) {
	e, _ := redisEnv(t)
	inv := invocation{env: e}
	deadLetters(t, e, "ingest", `{"n":1}`, `{"n":2}`)
	r := mustRun(t, exitOK, inv, "dlq", "replay", "--topic", "ingest", "--all", "--json")
	if !strings.Contains(r.stdout, `"count": 2`) {
		t.Fatalf("replay --all --json:\n%s", r.stdout)
	}
	mustRun(t, exitOK, inv, "consume", "--topic", "ingest", "--count", "2", "--timeout", "10s")
}

func TestHealth(t *testing.T) {
	e, _ := redisEnv(t)
	inv := invocation{env: e}
	r := mustRun(t, exitOK, inv, "health")
	if !strings.Contains(r.stdout, "no topics in namespace") {
		t.Fatalf("health on an empty namespace:\n%s", r.stdout)
	}
	deadLetters(t, e, "orchestrate", `{"n":0}`)
	mustRun(t, exitOK, inv, "produce", "--topic", "orchestrate", "--payload", `{"n":1}`, "--count", "3")
	mustRun(t, exitOK, inv, "produce", "--topic", "orchestrate", "--payload", `{"n":2}`, "--delay", "1h")
	// One job delivered and not settled: pending 1.
	b := openBroker(t, e, "holder")
	fetch(t, b, "orchestrate", 1)

	r = mustRun(t, exitOK, inv, "health", "--topic", "orchestrate")
	golden(t, "health", r.stdout)
	r = mustRun(t, exitOK, inv, "health") // all topics: the same one
	if !strings.Contains(r.stdout, "orchestrate") {
		t.Fatalf("health without --topic:\n%s", r.stdout)
	}
	r = mustRun(t, exitOK, inv, "health", "--json")
	var infos []broker.TopicInfo
	if err := json.Unmarshal([]byte(r.stdout), &infos); err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || infos[0].Length != 3 || infos[0].Pending != 1 || infos[0].Delayed != 1 || infos[0].DeadLetters != 1 {
		t.Fatalf("health --json = %+v", infos)
	}
}

func TestTrim(t *testing.T) {
	e, _ := redisEnv(t)
	inv := invocation{env: e}
	mustRun(t, exitOK, inv, "produce", "--topic", "logs", "--payload", `{}`, "--count", "10")

	// By default unread jobs are kept, and the output says so.
	r := mustRun(t, exitOK, inv, "trim", "--topic", "logs", "--maxlen", "4", "--dry-run")
	if !strings.Contains(r.stdout, "holds 10 entries (0 pending, 10 unread); trim would remove 0 entries now (the oldest entries beyond the newest 4), keeping every pending or unread entry") {
		t.Fatalf("trim --dry-run: %q", r.stdout)
	}
	r = mustRun(t, exitOK, inv, "trim", "--topic", "logs", "--maxlen", "4")
	golden(t, "trim", r.stdout)
	r = mustRun(t, exitOK, inv, "trim", "--topic", "logs", "--maxlen", "4", "--json")
	if !strings.Contains(r.stdout, `"removed": 0`) || !strings.Contains(r.stdout, `"kept_unread": 10`) {
		t.Fatalf("trim --json: %s", r.stdout)
	}

	// --include-unread drops the backlog beyond the newest 4.
	r = mustRun(t, exitOK, inv, "trim", "--topic", "logs", "--maxlen", "4", "--include-unread", "--dry-run")
	if !strings.Contains(r.stdout, "trim would remove 6 entries now (the oldest entries beyond the newest 4), keeping every pending entry") {
		t.Fatalf("trim --include-unread --dry-run: %q", r.stdout)
	}
	r = mustRun(t, exitOK, inv, "trim", "--topic", "logs", "--maxlen", "4", "--include-unread")
	if strings.TrimSpace(r.stdout) != "removed 6 entries from logs" {
		t.Fatalf("trim --include-unread: %q", r.stdout)
	}

	// The oldest remaining entry is now pending: trim must keep it and
	// everything after it, even with --include-unread.
	b := openBroker(t, e, "holder")
	fetch(t, b, "logs", 1)
	r = mustRun(t, exitOK, inv, "trim", "--topic", "logs", "--maxlen", "1", "--include-unread", "--json")
	if !strings.Contains(r.stdout, `"removed": 0`) {
		t.Fatalf("trim below the oldest pending entry: %s", r.stdout)
	}
	r = mustRun(t, exitOK, inv, "trim", "--topic", "logs", "--older-than", "1ns")
	if got := strings.TrimSpace(r.stdout); got != "removed 0 entries from logs\nkept 3 unread entries; pass --include-unread to remove them" {
		t.Fatalf("trim --older-than: %q", got)
	}
}

// TestTrimDryRunExact checks that trim --dry-run reports what the real trim
// then removes, with pending entries ahead of unread ones (which keep every
// entry) and without, for --maxlen 0 too.
func TestTrimDryRunExact(t *testing.T) {
	e, _ := redisEnv(t)
	inv := invocation{env: e}
	mustRun(t, exitOK, inv, "produce", "--topic", "logs", "--payload", `{}`, "--count", "8")
	b := openBroker(t, e, "holder")
	held := fetch(t, b, "logs", 2)

	// dryRun runs trim --dry-run with args, in text and JSON, checks that
	// both report want, and returns the text.
	dryRun := func(want int64, args ...string) string {
		t.Helper()
		args = append([]string{"trim", "--topic", "logs", "--dry-run"}, args...)
		r := mustRun(t, exitOK, inv, args...)
		text := r.stdout
		if w := fmt.Sprintf("; trim would remove %s now (", plural(want, "entry", "entries")); !strings.Contains(text, w) {
			t.Errorf("conveyor %s: stdout does not contain %q:\n%s", strings.Join(args, " "), w, text)
		}
		r = mustRun(t, exitOK, inv, append(args, "--json")...)
		var out map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
			t.Fatalf("%v: %s", err, r.stdout)
		}
		if out["would_remove"] != float64(want) || out["dry_run"] != true || out["length"] == nil || out["pending"] == nil {
			t.Errorf("conveyor %s --json = %s, want would_remove %d", strings.Join(args, " "), r.stdout, want)
		}
		if _, ok := out["at_most"]; ok {
			t.Errorf("conveyor %s --json still has at_most: %s", strings.Join(args, " "), r.stdout)
		}
		return text
	}
	// trim runs the real trim and checks it removed want.
	trim := func(want int64, args ...string) {
		t.Helper()
		r := mustRun(t, exitOK, inv, append([]string{"trim", "--topic", "logs", "--json"}, args...)...)
		var out struct{ Removed int64 }
		if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
			t.Fatalf("%v: %s", err, r.stdout)
		}
		if out.Removed != want {
			t.Errorf("conveyor trim %s removed %d, want %d", strings.Join(args, " "), out.Removed, want)
		}
	}

	// 2 pending entries, then 6 unread: nothing can go, whatever the
	// options.
	text := dryRun(0, "--maxlen", "1", "--include-unread")
	if !strings.Contains(text, "holds 8 entries (2 pending, 6 unread)") {
		t.Errorf("trim --dry-run: %q", text)
	}
	dryRun(0, "--maxlen", "0", "--include-unread")
	dryRun(0, "--older-than", "1ms", "--include-unread")
	trim(0, "--maxlen", "0", "--include-unread")

	// Nothing pending: --maxlen 0 --include-unread removes the 6 left.
	if err := b.Ack(t.Context(), held...); err != nil {
		t.Fatal(err)
	}
	dryRun(0, "--maxlen", "0")
	dryRun(4, "--maxlen", "2", "--include-unread")
	dryRun(6, "--maxlen", "0", "--include-unread")
	trim(6, "--maxlen", "0", "--include-unread")
	dryRun(0, "--maxlen", "0", "--include-unread")
}

// TestHealthNamespaceMismatch: jobs published under one namespace, health
// run under another points at the namespace that holds them.
func TestHealthNamespaceMismatch(t *testing.T) {
	e, _ := redisEnv(t)
	producer := e.with("REDIS_NAMESPACE", e["REDIS_NAMESPACE"]+"-prod")
	mustRun(t, exitOK, invocation{env: producer}, "produce", "--topic", "orchestrate", "--payload", `{}`)

	r := mustRun(t, exitFail, invocation{env: e}, "health", "--topic", "orchestrate")
	if !strings.Contains(r.stderr, "namespace "+producer["REDIS_NAMESPACE"]+" holds it") {
		t.Fatalf("no namespace hint:\n%s", r.stderr)
	}
	r = mustRun(t, exitOK, invocation{env: e}, "health")
	if !strings.Contains(r.stderr, "holds topics in namespace "+producer["REDIS_NAMESPACE"]) {
		t.Fatalf("no namespace hint:\n%s", r.stderr)
	}
	r = mustRun(t, exitOK, invocation{env: producer}, "health", "--topic", "orchestrate")
	if strings.Contains(r.stderr, "hint:") {
		t.Fatalf("hint on a topic that has jobs:\n%s", r.stderr)
	}
}

// TestHealthDiscoversRawTopics: on a keyspace larger than one listing of a
// long-running process scans, health still lists a topic written by a raw
// XADD alone (it scans the keyspace to the end).
func TestHealthDiscoversRawTopics(t *testing.T) {
	srv := redistest.Start(t, redistest.WithArgs("--enable-debug-command", "yes"))
	rdb := srv.Client(t)
	ctx := context.Background()
	if err := rdb.Do(ctx, "DEBUG", "POPULATE", 50_000).Err(); err != nil {
		t.Fatalf("DEBUG POPULATE: %v", err)
	}
	if err := rdb.XAdd(ctx, &goredis.XAddArgs{Stream: srv.Namespace + ":{raw}:stream", Values: []string{"payload", `{"x":1}`}}).Err(); err != nil {
		t.Fatal(err)
	}
	inv := invocation{env: env{
		"REDIS_URL":             srv.URL(),
		"REDIS_NAMESPACE":       srv.Namespace,
		"CONVEYOR_METRICS_ADDR": "",
	}}
	r := mustRun(t, exitOK, inv, "health")
	if !regexp.MustCompile(`(?m)^raw\s+1\s`).MatchString(r.stdout) {
		t.Fatalf("health does not list the topic written by XADD alone:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	}
}
