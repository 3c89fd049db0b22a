package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/job"
)

// TestBatchShowCancel shows a batch while open and after it completed, in
// text and JSON, cancels another, and fails (exit 1) for an unknown batch.
func TestBatchShowCancel(t *testing.T) {
	e, _ := redisEnv(t)
	inv := invocation{env: e}
	b := openBroker(t, e, "worker")
	ctx := context.Background()
	spec := broker.BatchSpec{ID: "b1", Members: []broker.Message{{Topic: "step", ID: "s1"}, {Topic: "step", ID: "s2"}},
		Callback: &broker.Message{Topic: "agg"}}
	if err := b.OpenBatch(ctx, spec); err != nil {
		t.Fatal(err)
	}
	ds := fetch(t, b, "step", 2)
	ds[0].Result = []byte(`"ok"`)
	if err := b.Ack(ctx, ds[0]); err != nil {
		t.Fatal(err)
	}
	r := mustRun(t, exitOK, inv, "batch", "show", "--id", "b1")
	for _, want := range []string{"state      open\n", "progress   1/2 ended (50%)\n", "callback   agg job b1.callback: waiting\n",
		"pending (1):\n  s2  step\n", "succeeded (1):\n  s1  step  result 4 bytes\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	if err := b.DeadLetter(ctx, ds[1], job.Failure{Error: "boom"}); err != nil {
		t.Fatal(err)
	}
	r = mustRun(t, exitOK, inv, "batch", "show", "--id", "b1", "--json")
	var bi broker.BatchInfo
	if err := json.Unmarshal([]byte(r.stdout), &bi); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	if bi.State != broker.BatchComplete || bi.Succeeded != 1 || bi.Dead != 1 || bi.CallbackState != broker.CallbackEnqueued ||
		string(bi.Members[0].Result) != `"ok"` || !strings.Contains(bi.Failed, "step/s2: boom") {
		t.Errorf("--json = %+v", bi)
	}

	if err := b.OpenBatch(ctx, broker.BatchSpec{ID: "b2", Members: []broker.Message{{Topic: "other", ID: "o1"}}, Callback: &broker.Message{Topic: "agg"}}); err != nil {
		t.Fatal(err)
	}
	r = mustRun(t, exitOK, inv, "batch", "cancel", "--id", "b2")
	for _, want := range []string{"state      cancelled\n", "callback   agg job b2.callback: skipped\n", "cancelled (1):\n  o1  other\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("cancel stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	r = mustRun(t, exitFail, inv, "batch", "show", "--id", "nope")
	if !strings.Contains(r.stderr, "no batch nope") {
		t.Errorf("stderr = %q", r.stderr)
	}
	mustRun(t, exitUsage, inv, "batch", "show")
}
