package main

import (
	"strings"
	"testing"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/job"
)

// TestDLQReplayUnique: replaying the dead letter of a unique job whose key
// another job took meanwhile leaves it, names the holder and exits 1; the
// other dead letters given are replayed.
func TestDLQReplayUnique(t *testing.T) {
	e, _ := redisEnv(t)
	inv := invocation{env: e}
	b := openBroker(t, e, "dead-letterer")
	ctx := t.Context()
	for _, key := range []string{"k1", "k2"} {
		if _, err := b.Publish(ctx, broker.Message{Topic: "reports", Payload: []byte(`{}`), UniqueKey: key}); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range fetch(t, b, "reports", 2) {
		if err := b.DeadLetter(ctx, d, job.Failure{Error: "boom", Reason: job.ReasonPermanent}); err != nil {
			t.Fatal(err)
		}
	}
	holder, err := b.Publish(ctx, broker.Message{Topic: "reports", Payload: []byte(`{}`), UniqueKey: "k1"})
	if err != nil {
		t.Fatal(err)
	}
	ids := dlqIDs(t, inv, "reports")
	if r := mustRun(t, exitOK, inv, "dlq", "show", "--topic", "reports", "--id", ids[0]); !strings.Contains(r.stdout, "unique key") || !strings.Contains(r.stdout, "k1") {
		t.Fatalf("dlq show does not print the unique key:\n%s", r.stdout)
	}
	if r := mustRun(t, exitOK, inv, "dlq", "list", "--topic", "reports", "--json"); !strings.Contains(r.stdout, `"unique_key":"k1"`) && !strings.Contains(r.stdout, `"unique_key": "k1"`) {
		t.Fatalf("dlq list --json does not carry unique_key:\n%s", r.stdout)
	}
	r := mustRun(t, exitFail, inv, "dlq", "replay", "--topic", "reports", "--id", ids[0], "--id", ids[1])
	if !strings.Contains(r.stderr, "replay after 1 dead letter") || !strings.Contains(r.stderr, "dead letter "+ids[0]) ||
		!strings.Contains(r.stderr, `duplicate unique key "k1" of topic "reports": held by job `+holder) {
		t.Fatalf("stderr = %q", r.stderr)
	}
	if left := dlqIDs(t, inv, "reports"); len(left) != 1 || left[0] != ids[0] {
		t.Fatalf("dead letters left %q, want %s", left, ids[0])
	}
}
