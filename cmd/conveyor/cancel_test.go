package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/job"
)

// TestCancel cancels a queued, a delayed and a running job, and fails
// (exit 1) with a clear message for a job that is not there; text from the
// job ID is escaped in human output.
func TestCancel(t *testing.T) {
	e, _ := redisEnv(t)
	inv := invocation{env: e}
	b := openBroker(t, e, "producer")
	ctx := context.Background()
	for _, m := range []broker.Message{
		{Topic: "orchestrate", Payload: []byte(`{"n":1}`), ID: "queued\x1b[31m"},
		{Topic: "orchestrate", Payload: []byte(`{"n":2}`), ID: "delayed-1", Delay: time.Hour},
	} {
		if _, err := b.Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
	}

	r := mustRun(t, exitOK, inv, "cancel", "--topic", "orchestrate", "--id", "queued\x1b[31m")
	if want := "cancelled queued job queued\\x1b[31m of orchestrate: moved to orchestrate.dlq with reason cancelled\n"; r.stdout != want {
		t.Errorf("stdout = %q, want %q", r.stdout, want)
	}

	r = mustRun(t, exitOK, inv, "cancel", "--topic", "orchestrate", "--id", "delayed-1", "--json")
	var out struct{ Topic, ID, State, Outcome string }
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	if out.Topic != "orchestrate" || out.ID != "delayed-1" || out.State != "delayed" || out.Outcome != "cancelled" {
		t.Errorf("--json = %+v", out)
	}

	if _, err := b.Publish(ctx, broker.Message{Topic: "orchestrate", Payload: []byte(`{"n":3}`), ID: "running-1"}); err != nil {
		t.Fatal(err)
	}
	worker := openBroker(t, e, "worker")
	d := fetch(t, worker, "orchestrate", 1)[0]
	r = mustRun(t, exitOK, inv, "cancel", "--topic", "orchestrate", "--id", "running-1")
	if !strings.HasPrefix(r.stdout, "job running-1 of orchestrate is running: cancel requested;") {
		t.Errorf("stdout = %q", r.stdout)
	}
	if rs, err := worker.CancelRequested(ctx, d); err != nil || len(rs) != 1 {
		t.Fatalf("CancelRequested = %v, %v; want the running job", rs, err)
	}

	dls, err := b.DeadLetters(ctx, "orchestrate", "", 0)
	if err != nil || len(dls) != 2 {
		t.Fatalf("DeadLetters = %v, %v; want two", dls, err)
	}
	for _, dl := range dls {
		if dl.Job.Failure == nil || dl.Job.Failure.Reason != job.ReasonCancelled {
			t.Errorf("dead letter %q: failure %+v, want reason cancelled", dl.Job.ID, dl.Job.Failure)
		}
	}

	r = mustRun(t, exitFail, inv, "cancel", "--topic", "orchestrate", "--id", "queued\x1b[31m")
	if want := "conveyor: no job queued\\x1b[31m in orchestrate: it was never published there, or it has finished"; !strings.HasPrefix(r.stderr, want) {
		t.Errorf("stderr = %q, want it to start with %q", r.stderr, want)
	}
	r = mustRun(t, exitFail, inv, "cancel", "--topic", "orchestrat", "--id", "x")
	if !strings.Contains(r.stderr, "orchestrat") || !strings.Contains(r.stderr, "orchestrate") {
		t.Errorf("stderr for an unknown topic = %q, want it to name the topic and suggest orchestrate", r.stderr)
	}
	mustRun(t, exitUsage, inv, "cancel", "--topic", "orchestrate")
}
