package dashboard_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/memory"
	"github.com/conveyor-jobs/conveyor/dashboard"
	"github.com/conveyor-jobs/conveyor/internal/dashboardtest"
	"github.com/conveyor-jobs/conveyor/job"
)

// TestBatchPage serves a batch's page: state, progress, counts, callback and
// members by state; /batches?id= redirects to it; an unknown batch is 404.
func TestBatchPage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := memory.New(nil)
	t.Cleanup(func() { _ = b.Close() })
	err := b.OpenBatch(ctx, broker.BatchSpec{ID: "b1", Members: []broker.Message{{Topic: "steps", ID: "s1"}, {Topic: "steps", ID: "s2"}, {Topic: "steps", ID: "s3"}},
		Callback: &broker.Message{Topic: "aggregate"}})
	if err != nil {
		t.Fatal(err)
	}
	ds := dashboardtest.Fetch(t, b, "steps", 2)
	ds[0].Result = []byte(`{"ok":true}`)
	if err := b.Ack(ctx, ds[0]); err != nil {
		t.Fatal(err)
	}
	if err := b.DeadLetter(ctx, ds[1], job.Failure{Error: "boom", Reason: job.ReasonPermanent}); err != nil {
		t.Fatal(err)
	}
	d := dashboard.New(b, nil)
	r := get(t, d, "/batches/b1")
	if r.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", r.StatusCode, r.body)
	}
	main := section(r.body, "batch")
	for _, want := range []string{">open<", "2/3 ended (66%)", "1 succeeded, 1 dead, 0 cancelled", ">aggregate</a> job <span class=\"mono\">b1.callback</span>: <b>waiting</b>", "boom"} {
		if !strings.Contains(main, want) {
			t.Errorf("batch panel lacks %q:\n%s", want, main)
		}
	}
	for id, want := range map[string]string{"members-pending": "s3", "members-succeeded": "s1", "members-dead": "s2"} {
		if s := section(r.body, id); !strings.Contains(s, want) {
			t.Errorf("panel %s lacks %s:\n%s", id, want, s)
		}
	}
	if r := get(t, d, "/batches?id=b1"); r.StatusCode != http.StatusSeeOther {
		t.Errorf("lookup: status %d", r.StatusCode)
	}
	if r := get(t, d, "/batches/nope"); r.StatusCode != http.StatusNotFound {
		t.Errorf("unknown batch: status %d", r.StatusCode)
	}
}
