package main

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/job"
)

func TestPrintable(t *testing.T) {
	tests := []struct {
		in, line, text string
	}{
		{"plain text, ünïcode", "plain text, ünïcode", "plain text, ünïcode"},
		{"\x1b]0;owned\x07", `\x1b]0;owned\a`, `\x1b]0;owned\a`},
		{"\x1b[2J\x1b[H", `\x1b[2J\x1b[H`, `\x1b[2J\x1b[H`},
		{"a\nb\tc\r", `a\nb\tc\r`, "a\nb\tc\\r"},
		{"\u009b31m \x7f", `\u009b31m \x7f`, `\u009b31m \x7f`},
		{"evil\u202etxt.exe", `evil\u202etxt.exe`, `evil\u202etxt.exe`},
		{"bad \xff byte", `bad \xff byte`, `bad \xff byte`},
		{`back\slash`, `back\slash`, `back\slash`},
	}
	for _, tt := range tests {
		if got := printable(tt.in); got != tt.line {
			t.Errorf("printable(%q) = %q, want %q", tt.in, got, tt.line)
		}
		if got := printableText(tt.in); got != tt.text {
			t.Errorf("printableText(%q) = %q, want %q", tt.in, got, tt.text)
		}
	}
}

// TestTerminalEscapes checks that health, dlq list, dlq show and consume
// print no control character a producer put in a topic, job ID, header,
// error, reason or payload, and that --json keeps the data as it is.
func TestTerminalEscapes(t *testing.T) {
	e, _ := redisEnv(t)
	inv := invocation{env: e}
	const (
		title = "\x1b]0;owned\x07"
		clear = "\x1b[2J"
		topic = "evil\x1b[31m"
	)
	b := openBroker(t, e, "producer")
	msg := broker.Message{
		Topic:   topic,
		ID:      "job" + clear,
		Payload: []byte("not json " + title),
		Headers: map[string]string{"x" + clear: "v" + title},
	}
	for range 2 {
		if _, err := b.Publish(t.Context(), msg); err != nil {
			t.Fatal(err)
		}
	}
	d := fetch(t, b, topic, 1)[0]
	f := job.Failure{Error: "boom" + title, Reason: "why" + clear, Handler: "h" + clear, Origin: topic, At: time.Now()}
	if err := b.DeadLetter(t.Context(), d, f); err != nil {
		t.Fatal(err)
	}
	checkClean := func(t *testing.T, what, out string) {
		t.Helper()
		if strings.ContainsAny(out, "\x1b\x07") {
			t.Errorf("%s prints a control character:\n%q", what, out)
		}
	}
	r := mustRun(t, exitOK, inv, "health", "--topic", topic)
	checkClean(t, "health", r.stdout+r.stderr)
	if !strings.Contains(r.stdout, `evil\x1b[31m`) {
		t.Errorf("health does not show the topic escaped:\n%s", r.stdout)
	}
	r = mustRun(t, exitOK, inv, "dlq", "list", "--topic", topic)
	checkClean(t, "dlq list", r.stdout+r.stderr)
	if !strings.Contains(r.stdout, `job\x1b[2J`) || !strings.Contains(r.stdout, `boom\x1b]0;owned\a`) {
		t.Errorf("dlq list does not show the job ID and error escaped:\n%s", r.stdout)
	}
	id := dlqIDs(t, inv, topic)[0]
	r = mustRun(t, exitOK, inv, "dlq", "show", "--topic", topic, "--id", id)
	checkClean(t, "dlq show", r.stdout+r.stderr)
	for _, want := range []string{`header x\x1b[2J=v\x1b]0;owned\a`, `reason why\x1b[2J`, `handler h\x1b[2J`, `not json \x1b]0;owned\a`} {
		if !strings.Contains(normalize(r.stdout), want) {
			t.Errorf("dlq show does not contain %q:\n%s", want, r.stdout)
		}
	}
	r = mustRun(t, exitOK, inv, "dlq", "show", "--topic", topic, "--id", id, "--json")
	var views []deadLetterView
	if err := json.Unmarshal([]byte(r.stdout), &views); err != nil || len(views) != 1 {
		t.Fatalf("dlq show --json: %v\n%s", err, r.stdout)
	}
	if v := views[0].Job; v.Failure.Error != f.Error || v.Headers["x"+clear] != "v"+title {
		t.Errorf("dlq show --json changed the data: %+v", v)
	}
	r = mustRun(t, exitOK, inv, "consume", "--topic", topic, "--timeout", "10s")
	checkClean(t, "consume", r.stdout+r.stderr)
	if !strings.Contains(r.stdout, `job job\x1b[2J  topic=evil\x1b[31m`) || !strings.Contains(r.stdout, `headers: x\x1b[2J=v\x1b]0;owned\a`) {
		t.Errorf("consume does not show the job escaped:\n%s", r.stdout)
	}
}

// TestDLQShowByJobID checks that dlq show --id takes a job ID as well as a
// dead letter ID, and shows every dead letter of a job that has several.
func TestDLQShowByJobID(t *testing.T) {
	e, _ := redisEnv(t)
	inv := invocation{env: e}
	b := openBroker(t, e, "worker")
	deadLetter := func(id string) {
		t.Helper()
		if _, err := b.Publish(t.Context(), broker.Message{Topic: "orchestrate", ID: id, Payload: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
		d := fetch(t, b, "orchestrate", 1)[0]
		if err := b.DeadLetter(t.Context(), d, job.FailureOf(&d.Job, errors.New("boom"), job.ReasonExhausted, time.Now())); err != nil {
			t.Fatal(err)
		}
	}
	deadLetter("job-a")
	deadLetter("job-b")
	deadLetter("job-a") // the same job failed again after a replay
	ids := dlqIDs(t, inv, "orchestrate")

	r := mustRun(t, exitOK, inv, "dlq", "show", "--topic", "orchestrate", "--id", "job-b")
	if !strings.Contains(r.stdout, ids[1]) || strings.Count(r.stdout, "dead letter ") != 1 {
		t.Errorf("show by job ID:\n%s", r.stdout)
	}
	r = mustRun(t, exitOK, inv, "dlq", "show", "--topic", "orchestrate", "--id", "job-a")
	if strings.Count(r.stdout, "job id") != 2 || strings.Index(r.stdout, ids[0]) > strings.Index(r.stdout, ids[2]) {
		t.Errorf("show by a job ID with two dead letters, oldest first:\n%s", r.stdout)
	}
	if !strings.Contains(r.stderr, "job job-a has 2 dead letters in orchestrate.dlq, oldest first") {
		t.Errorf("show by a job ID with two dead letters, stderr:\n%s", r.stderr)
	}
	r = mustRun(t, exitOK, inv, "dlq", "show", "--topic", "orchestrate", "--id", "job-a", "--id", ids[1], "--json")
	var views []deadLetterView
	if err := json.Unmarshal([]byte(r.stdout), &views); err != nil {
		t.Fatal(err)
	}
	if len(views) != 3 || views[0].ID != ids[0] || views[1].ID != ids[2] || views[2].Job.ID != "job-b" {
		t.Errorf("show --json by job ID and dead letter ID: %+v", views)
	}
	r = mustRun(t, exitFail, inv, "dlq", "show", "--topic", "orchestrate", "--id", "job-z")
	if !strings.Contains(r.stderr, "no dead letter or job job-z in orchestrate.dlq") {
		t.Errorf("show of an unknown ID:\n%s", r.stderr)
	}
}

// TestDLQPurgeAllConfirm checks that dlq purge --all asks on a terminal,
// deletes only on yes, and elsewhere needs --yes.
func TestDLQPurgeAllConfirm(t *testing.T) {
	e, _ := redisEnv(t)
	deadLetters(t, e, "orchestrate", `{"n":1}`, `{"n":2}`)
	count := func() int { return len(dlqIDs(t, invocation{env: e}, "orchestrate")) }

	r := mustRun(t, exitUsage, invocation{env: e}, "dlq", "purge", "--topic", "orchestrate", "--all")
	if !strings.Contains(r.stderr, "pass --yes to confirm") {
		t.Errorf("purge --all without a terminal:\n%s", r.stderr)
	}
	r = mustRun(t, exitFail, invocation{env: e, stdinTerminal: true, stdin: "n\n"}, "dlq", "purge", "--topic", "orchestrate", "--all")
	if !strings.Contains(r.stderr, "Purge all 2 dead letters of orchestrate for good? [y/N]") || !strings.Contains(r.stderr, "not confirmed") {
		t.Errorf("purge --all answered no:\n%s", r.stderr)
	}
	mustRun(t, exitFail, invocation{env: e, stdinTerminal: true}, "dlq", "purge", "--topic", "orchestrate", "--all") // no answer
	if n := count(); n != 2 {
		t.Fatalf("%d dead letters left after purges not confirmed, want 2", n)
	}
	// The dry run and replay never ask.
	mustRun(t, exitOK, invocation{env: e}, "dlq", "purge", "--topic", "orchestrate", "--all", "--dry-run")
	r = mustRun(t, exitOK, invocation{env: e, stdinTerminal: true, stdin: "yes\n"}, "dlq", "purge", "--topic", "orchestrate", "--all")
	if !strings.Contains(r.stdout, "purged 2 dead letters of orchestrate") {
		t.Errorf("purge --all answered yes:\n%s", r.stdout)
	}
	deadLetters(t, e, "orchestrate", `{"n":3}`)
	mustRun(t, exitOK, invocation{env: e}, "dlq", "purge", "--topic", "orchestrate", "--all", "--yes")
	if n := count(); n != 0 {
		t.Fatalf("%d dead letters left after purge --all --yes", n)
	}
}

// TestJSONDurations checks that durations in --json are seconds named
// *_seconds, never nanoseconds.
func TestJSONDurations(t *testing.T) {
	e, _ := redisEnv(t)
	inv := invocation{env: e}
	mustRun(t, exitOK, inv, "produce", "--topic", "orchestrate", "--payload", `{}`)
	fetch(t, openBroker(t, e, "holder"), "orchestrate", 1)
	r := mustRun(t, exitOK, inv, "health", "--topic", "orchestrate", "--json")
	var infos []struct {
		Groups []struct {
			Consumers []map[string]any
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &infos); err != nil {
		t.Fatal(err)
	}
	c := infos[0].Groups[0].Consumers[0]
	idle, ok := c["idle_seconds"].(float64)
	if _, raw := c["idle"]; raw || !ok || idle < 0 || idle > 3600 {
		t.Errorf("health --json consumer = %v, want idle_seconds in seconds and no idle", c)
	}
	r = mustRun(t, exitOK, inv, "ping", "--json")
	var p map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil {
		t.Fatal(err)
	}
	if rt, ok := p["round_trip_seconds"].(float64); !ok || rt <= 0 || rt > 60 || p["round_trip_ms"] != nil {
		t.Errorf("ping --json = %v, want round_trip_seconds", p)
	}
}

// TestErrorsEscaped checks that an error quoting producer data prints no
// control character.
func TestErrorsEscaped(t *testing.T) {
	e, _ := redisEnv(t)
	inv := invocation{env: e}
	mustRun(t, exitOK, inv, "produce", "--topic", "orchestrate", "--payload", `{}`)
	r := mustRun(t, exitFail, inv, "dlq", "show", "--topic", "orchestrate", "--id", "job\x1b[2J")
	if strings.Contains(r.stderr, "\x1b") || !strings.Contains(r.stderr, `no dead letter or job job\x1b[2J`) {
		t.Errorf("stderr: %q", r.stderr)
	}
}
