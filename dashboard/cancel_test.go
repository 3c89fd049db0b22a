package dashboard_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/dashboard"
	"github.com/conveyor-jobs/conveyor/internal/dashboardtest"
	"github.com/conveyor-jobs/conveyor/job"
)

// TestCancelJob cancels a delayed job (dead-lettered cancelled at once) and
// a pending one (a cancel request its worker sees) from the topic page's
// Cancel buttons, with the page's CSRF token.
func TestCancelJob(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	h := dashboard.New(f.Broker, nil)
	page := get(t, h, "/topics/orchestrate").body
	if n := strings.Count(page, `data-action="cancel"`); n != dashboardtest.OrchestratePending+dashboardtest.OrchestrateDelayed {
		t.Errorf("%d Cancel buttons, want one per pending entry and delayed job (%d)", n, dashboardtest.OrchestratePending+dashboardtest.OrchestrateDelayed)
	}
	token := csrfToken(t, page)

	if res := post(t, h, "/topics/orchestrate/jobs/cancel", url.Values{"id": {"later-1"}}); res.StatusCode != http.StatusForbidden {
		t.Fatalf("cancel without a CSRF token: %d, want 403", res.StatusCode)
	}
	res := post(t, h, "/topics/orchestrate/jobs/cancel", url.Values{"csrf": {token}, "id": {"later-1"}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("cancel delayed: %d %s", res.StatusCode, res.body)
	}
	if info := dashboardtest.Inspect(t, f.Broker, "orchestrate"); info.Delayed != dashboardtest.OrchestrateDelayed-1 || info.DeadLetters != dashboardtest.OrchestrateDead+1 {
		t.Errorf("after cancel: delayed %d, dead %d; want %d, %d", info.Delayed, info.DeadLetters, dashboardtest.OrchestrateDelayed-1, dashboardtest.OrchestrateDead+1)
	}
	dls, err := f.Broker.DeadLetters(ctx, "orchestrate", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if last := dls[len(dls)-1].Job; last.ID != "later-1" || last.Failure == nil || last.Failure.Reason != job.ReasonCancelled {
		t.Errorf("last dead letter = %+v, want later-1 with reason cancelled", last)
	}
	back := mustURL(t, "http://example.com/topics/orchestrate/jobs/cancel").ResolveReference(mustURL(t, res.Header.Get("Location")))
	if back.Path != "/topics/orchestrate" {
		t.Errorf("redirect to %s, want the topic page", back)
	}
	if page := get(t, h, back.RequestURI()).body; !strings.Contains(page, "Cancelled the job") {
		t.Error("no message after the cancel")
	}
	if res := post(t, h, "/topics/orchestrate/jobs/cancel", url.Values{"csrf": {token}, "id": {"later-1"}}); res.StatusCode != http.StatusNotFound {
		t.Errorf("cancelling it again: %d, want 404", res.StatusCode)
	}

	pending, err := f.Broker.PendingEntries(ctx, "orchestrate", 10)
	if err != nil || len(pending) != 1 {
		t.Fatalf("PendingEntries = %v, %v", pending, err)
	}
	res = post(t, h, "/topics/orchestrate/jobs/cancel", url.Values{"csrf": {token}, "id": {pending[0].ID}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("cancel pending: %d %s", res.StatusCode, res.body)
	}
	back = mustURL(t, "http://example.com/topics/orchestrate/jobs/cancel").ResolveReference(mustURL(t, res.Header.Get("Location")))
	if page := get(t, h, back.RequestURI()).body; !strings.Contains(page, "Cancel requested") {
		t.Error("no message after the cancel request")
	}
	d := &broker.Delivery{Job: job.Job{Topic: "orchestrate"}, Receipt: pending[0].ID}
	if rs, err := f.WorkerA.CancelRequested(ctx, d); err != nil || !slices.Equal(rs, []string{pending[0].ID}) {
		t.Errorf("CancelRequested = %v, %v; want the pending entry", rs, err)
	}

	ro := dashboard.New(f.Broker, &dashboard.Options{ReadOnly: true})
	if strings.Contains(get(t, ro, "/topics/orchestrate").body, `data-action="cancel"`) {
		t.Error("a read-only dashboard shows Cancel buttons")
	}
}
