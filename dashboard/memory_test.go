package dashboard_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/memory"
	"github.com/conveyor-jobs/conveyor/dashboard"
	"github.com/conveyor-jobs/conveyor/internal/dashboardtest"
)

// section returns the panel of page with the given id, "" when absent.
func section(page, id string) string {
	_, s, ok := strings.Cut(page, `id="`+id+`"`)
	if !ok {
		return ""
	}
	s, _, _ = strings.Cut(s, "</section>")
	return s
}

// TestMemoryBrokerPendingAndDelayed serves a topic page from the memory
// broker: its pending and delayed panels list what the broker holds, and a
// delayed job can be deleted.
func TestMemoryBrokerPendingAndDelayed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := memory.New(nil)
	t.Cleanup(func() { _ = b.Close() })
	worker := b.Consumer("worker-7")
	dashboardtest.Publish(t, b, "emails", 2)
	ds := dashboardtest.Fetch(t, worker, "emails", 1)
	for _, m := range []broker.Message{
		{Topic: "emails", ID: "later-1", Payload: []byte(`{"to":"a@example.com"}`), Delay: time.Hour},
		{Topic: "emails", ID: "later-2", Payload: []byte(`{"to":"b@example.com"}`), Delay: 2 * time.Hour},
	} {
		if _, err := b.Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
	}

	h := dashboard.New(b, nil)
	page := get(t, h, "/topics/emails")
	if page.StatusCode != http.StatusOK {
		t.Fatalf("topic page: %d", page.StatusCode)
	}
	pending := section(page.body, "pending")
	for _, want := range []string{ds[0].Receipt, "worker-7"} {
		if !strings.Contains(pending, want) {
			t.Errorf("pending panel does not contain %q:\n%s", want, pending)
		}
	}
	delayed := section(page.body, "delayed")
	first, second := strings.Index(delayed, "later-1"), strings.Index(delayed, "later-2")
	if first < 0 || second < first || !strings.Contains(delayed, "a@example.com") {
		t.Errorf("delayed panel does not list later-1 then later-2 with the payload:\n%s", delayed)
	}

	res := post(t, h, "/topics/emails/delayed/delete", url.Values{"csrf": {csrfToken(t, page.body)}, "id": {"later-1"}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("delete: %d %s", res.StatusCode, res.body)
	}
	if info := dashboardtest.Inspect(t, b, "emails"); info.Delayed != 1 {
		t.Errorf("delayed %d after the delete, want 1", info.Delayed)
	}
	if delayed := section(get(t, h, "/topics/emails").body, "delayed"); strings.Contains(delayed, "later-1") || !strings.Contains(delayed, "later-2") {
		t.Errorf("after the delete, the delayed panel is:\n%s", delayed)
	}
}

// TestPanelsNeedPowers checks that a broker without the pending and delayed
// listings gets a topic page without those panels.
func TestPanelsNeedPowers(t *testing.T) {
	t.Parallel()
	b := memory.New(nil)
	t.Cleanup(func() { _ = b.Close() })
	dashboardtest.Publish(t, b, "emails", 2)
	dashboardtest.Fetch(t, b, "emails", 1)
	if _, err := b.Publish(context.Background(), broker.Message{Topic: "emails", ID: "later-1", Delay: time.Hour}); err != nil {
		t.Fatal(err)
	}
	// Only the powers named here: no PendingLister, DelayedLister or
	// DelayedDeleter.
	limited := struct {
		broker.Inspector
		broker.DeadLetterAdmin
	}{b, b}
	page := get(t, dashboard.New(limited, nil), "/topics/emails")
	if page.StatusCode != http.StatusOK {
		t.Fatalf("topic page: %d", page.StatusCode)
	}
	if section(page.body, "pending") != "" || section(page.body, "delayed") != "" || strings.Contains(page.body, "later-1") {
		t.Error("the page shows panels the broker cannot fill")
	}
	if section(page.body, "dead") == "" {
		t.Error("the page lacks the dead-letter panel the broker can fill")
	}
}
