package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/job"
)

// TestJobShow shows a succeeded job's result (JSON pretty-printed, text
// escaped), a running job's progress, a queued and a dead job, and fails
// (exit 1) for a job acknowledged without a result.
func TestJobShow(t *testing.T) {
	e, _ := redisEnv(t)
	inv := invocation{env: e}
	b := openBroker(t, e, "worker")
	ctx := context.Background()
	for _, m := range []broker.Message{
		{Topic: "orchestrate", Payload: []byte(`{"n":1}`), ID: "json-result"},
		{Topic: "orchestrate", Payload: []byte(`{"n":2}`), ID: "text-result"},
		{Topic: "orchestrate", Payload: []byte(`{"n":3}`), ID: "no-result"},
		{Topic: "orchestrate", Payload: []byte(`{"n":4}`), ID: "running"},
		{Topic: "orchestrate", Payload: []byte(`{"n":5}`), ID: "dead"},
		{Topic: "orchestrate", Payload: []byte(`{"n":6}`), ID: "queued"},
	} {
		if _, err := b.Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	ds := fetch(t, b, "orchestrate", 5)
	ds[0].Result = []byte(`{"steps":["plan","write"],"tokens":212}`)
	ds[1].Result = []byte("plain\x1b[31m text")
	if err := b.Ack(ctx, ds[0], ds[1], ds[2]); err != nil {
		t.Fatal(err)
	}
	if err := b.RecordProgress(ctx, broker.ProgressUpdate{Delivery: ds[3], Progress: broker.Progress{Fraction: 0.4, Message: "step 2 of 5", At: ds[3].Job.EnqueuedAt}}); err != nil {
		t.Fatal(err)
	}
	if err := b.DeadLetter(ctx, ds[4], job.Failure{Error: "bad input", Reason: job.ReasonPermanent}); err != nil {
		t.Fatal(err)
	}

	r := mustRun(t, exitOK, inv, "job", "show", "--topic", "orchestrate", "--id", "json-result")
	r.stdout = normalize(r.stdout)
	for _, want := range []string{"state succeeded", "attempt 1", "result kept until", "result:\n  {\n    \"steps\": [\n      \"plan\",", "\"tokens\": 212\n  }\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("succeeded job: stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	r = mustRun(t, exitOK, inv, "job", "show", "--topic", "orchestrate", "--id", "text-result")
	if want := "result (not JSON, 15 bytes):\n  plain\\x1b[31m text\n"; !strings.HasSuffix(r.stdout, want) {
		t.Errorf("text result: stdout = %q, want it to end with %q", r.stdout, want)
	}
	r = mustRun(t, exitOK, inv, "job", "show", "--topic", "orchestrate", "--id", "text-result", "--json")
	var v struct {
		State      string          `json:"state"`
		Result     json.RawMessage `json:"result"`
		ResultText *string         `json:"result_text"`
		Progress   *struct {
			Fraction float64 `json:"fraction"`
			Message  string  `json:"message"`
		} `json:"progress"`
		Failure *struct{ Reason, Error string } `json:"failure"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	if v.State != "succeeded" || v.ResultText == nil || *v.ResultText != "plain\x1b[31m text" || v.Result != nil {
		t.Errorf("--json of a text result = %s", r.stdout)
	}
	r = mustRun(t, exitOK, inv, "job", "show", "--topic", "orchestrate", "--id", "json-result", "--json")
	v.ResultText = nil
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, v.Result); err != nil || compact.String() != `{"steps":["plan","write"],"tokens":212}` {
		t.Errorf("--json result = %s", v.Result)
	}

	r = mustRun(t, exitOK, inv, "job", "show", "--topic", "orchestrate", "--id", "running")
	r.stdout = normalize(r.stdout)
	if want := "progress [########............] 40% step 2 of 5"; !strings.Contains(r.stdout, want) || !strings.Contains(r.stdout, "state running") {
		t.Errorf("running job: stdout lacks %q:\n%s", want, r.stdout)
	}
	r = mustRun(t, exitOK, inv, "job", "show", "--topic", "orchestrate", "--id", "running", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	if v.State != "running" || v.Progress == nil || v.Progress.Fraction != 0.4 || v.Progress.Message != "step 2 of 5" {
		t.Errorf("--json of a running job = %s", r.stdout)
	}

	r = mustRun(t, exitOK, inv, "job", "show", "--topic", "orchestrate", "--id", "dead")
	r.stdout = normalize(r.stdout)
	for _, want := range []string{"state dead", "reason permanent", "error bad input"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("dead job: stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	r = mustRun(t, exitOK, inv, "job", "show", "--topic", "orchestrate", "--id", "queued")
	r.stdout = normalize(r.stdout)
	if !strings.Contains(r.stdout, "state queued") {
		t.Errorf("queued job:\n%s", r.stdout)
	}

	r = mustRun(t, exitFail, inv, "job", "show", "--topic", "orchestrate", "--id", "no-result")
	if want := "conveyor: no job no-result held in orchestrate: never published there, acknowledged without a result (such jobs are not kept), or its result expired"; !strings.HasPrefix(r.stderr, want) {
		t.Errorf("stderr = %q, want it to start with %q", r.stderr, want)
	}
	r = mustRun(t, exitFail, inv, "job", "show", "--topic", "orchestrat", "--id", "x")
	if !strings.Contains(r.stderr, "orchestrate") {
		t.Errorf("stderr for an unknown topic = %q, want it to suggest orchestrate", r.stderr)
	}
	mustRun(t, exitUsage, inv, "job", "show", "--topic", "orchestrate")
	mustRun(t, exitUsage, inv, "job", "show", "--id", "x")
}
