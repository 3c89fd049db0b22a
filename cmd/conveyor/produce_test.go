package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

var uuidLine = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func TestProduceConsume(t *testing.T) {
	e, _ := redisEnv(t)
	inv := invocation{env: e}

	r := mustRun(t, exitOK, inv, "produce", "--topic", "orchestrate", "--payload", `{"prompt":"summarise"}`, "--header", "tenant=acme")
	id := strings.TrimSpace(r.stdout)
	if !uuidLine.MatchString(id) {
		t.Fatalf("produce printed %q, want one job ID", r.stdout)
	}
	golden(t, "produce", r.stdout)

	r = mustRun(t, exitOK, inv, "consume", "--topic", "orchestrate", "--timeout", "10s")
	if !strings.Contains(r.stdout, id) {
		t.Fatalf("consume did not print job %s:\n%s", id, r.stdout)
	}
	golden(t, "consume", r.stdout)

	// The job was acknowledged: nothing is left to consume.
	r = mustRun(t, exitFail, inv, "consume", "--topic", "orchestrate", "--timeout", "1500ms")
	if !strings.Contains(r.stderr, "consumed 0 of 1 jobs") {
		t.Fatalf("stderr = %q", r.stderr)
	}

	// A payload from standard input, sent raw.
	r = mustRun(t, exitOK, invocation{env: e, stdin: "plain text"}, "produce", "-t", "notes", "--file", "-", "--raw")
	r = mustRun(t, exitOK, inv, "consume", "-t", "notes", "--json", "--timeout", "10s")
	var v jobView
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	if string(v.Payload) != `"plain text"` || v.Attempt != 1 || v.Topic != "notes" {
		t.Fatalf("consumed %+v", v)
	}
}

func TestProduceMany(t *testing.T) {
	e, _ := redisEnv(t)
	inv := invocation{env: e}
	r := mustRun(t, exitOK, inv, "produce", "--topic", "bulk", "--payload", `{"n":1}`, "--count", "1200")
	if strings.TrimSpace(r.stdout) != "published 1200 jobs to bulk" {
		t.Fatalf("stdout = %q", r.stdout)
	}
	r = mustRun(t, exitOK, inv, "produce", "--topic", "bulk", "--payload", `{"n":2}`, "--count", "3", "--json", "--delay", "1h")
	var out struct {
		Topic string
		Count int
		IDs   []string
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatal(err)
	}
	if out.Count != 3 || len(out.IDs) != 3 || out.Topic != "bulk" {
		t.Fatalf("produce --json = %+v", out)
	}
	r = mustRun(t, exitOK, inv, "health", "--topic", "bulk", "--json")
	var infos []struct {
		Length  int64 `json:"length"`
		Delayed int64 `json:"delayed"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &infos); err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || infos[0].Length != 1200 || infos[0].Delayed != 3 {
		t.Fatalf("health = %+v", infos)
	}
}

func TestProduceProgressBar(t *testing.T) {
	e, _ := redisEnv(t)
	r := mustRun(t, exitOK, invocation{env: e, terminal: true}, "produce", "--topic", "bulk", "--payload", "{}", "--count", "1000")
	if !strings.Contains(r.stderr, "publishing [") || !strings.Contains(r.stderr, "1000/1000") {
		t.Fatalf("no progress bar on a terminal:\n%q", r.stderr)
	}
	r = mustRun(t, exitOK, invocation{env: e}, "produce", "--topic", "bulk", "--payload", "{}", "--count", "1000")
	if r.stderr != "" {
		t.Fatalf("progress bar when stderr is not a terminal:\n%q", r.stderr)
	}
}

func TestProgress(t *testing.T) {
	var buf syncBuffer
	p := newProgress(&buf, "publishing", 2000, true)
	p.add(1000)
	p.add(1000)
	p.finish()
	if got := buf.String(); !strings.Contains(got, "2000/2000") || !strings.HasSuffix(got, "\n") {
		t.Fatalf("progress drew %q", got)
	}
	buf = syncBuffer{}
	p = newProgress(&buf, "publishing", 2000, false)
	p.add(2000)
	p.finish()
	if buf.String() != "" {
		t.Fatalf("progress off drew %q", buf.String())
	}
}
