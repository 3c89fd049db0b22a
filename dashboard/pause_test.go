package dashboard_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/conveyor-jobs/conveyor/dashboard"
	"github.com/conveyor-jobs/conveyor/internal/dashboardtest"
)

// TestPauseResume: the topic page's Pause button pauses the topic for
// every worker, the pages show it paused with a Resume button, and Resume
// clears it. Without the CSRF token, or read-only, nothing changes.
func TestPauseResume(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	h := dashboard.New(f.Broker, nil)
	page := get(t, h, "/topics/orchestrate").body
	if !strings.Contains(page, "fetching/pause") || strings.Contains(page, "fetching/resume") {
		t.Fatalf("topic page of an active topic lacks the Pause button, or shows Resume")
	}
	csrf := csrfToken(t, page)

	if res := post(t, h, "/topics/orchestrate/fetching/pause", url.Values{}); res.StatusCode != http.StatusForbidden {
		t.Fatalf("pause without CSRF token: %d, want 403", res.StatusCode)
	}
	if dashboardtest.Inspect(t, f.Broker, "orchestrate").Paused {
		t.Fatal("paused without a CSRF token")
	}
	ro := dashboard.New(f.Broker, &dashboard.Options{ReadOnly: true})
	if res := post(t, ro, "/topics/orchestrate/fetching/pause", url.Values{"csrf": {csrf}}); res.StatusCode != http.StatusForbidden {
		t.Fatalf("pause on a read-only dashboard: %d, want 403", res.StatusCode)
	}

	res := post(t, h, "/topics/orchestrate/fetching/pause", url.Values{"csrf": {csrf}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("pause: %d %s", res.StatusCode, res.body)
	}
	loc, _ := url.Parse("http://example.com/topics/orchestrate/fetching/pause")
	back := loc.ResolveReference(mustURL(t, res.Header.Get("Location")))
	if back.Path != "/topics/orchestrate" {
		t.Errorf("redirect to %s, want the topic page", back)
	}
	if !dashboardtest.Inspect(t, f.Broker, "orchestrate").Paused {
		t.Fatal("the topic is not paused after Pause")
	}
	after := get(t, h, back.RequestURI()).body
	if !strings.Contains(after, "Paused: no worker fetches") || !strings.Contains(after, "fetching/resume") {
		t.Errorf("topic page after Pause lacks the message or the Resume button")
	}
	if !strings.Contains(get(t, h, "/").body, `<span class="reason">paused</span>`) {
		t.Errorf("overview does not mark the paused topic")
	}
	if ds, err := f.Broker.Fetch(t.Context(), []string{"orchestrate"}, 10); err != nil || len(ds) != 0 {
		t.Errorf("fetched %d jobs of the paused topic (err %v)", len(ds), err)
	}

	if res := post(t, h, "/topics/orchestrate/fetching/resume", url.Values{"csrf": {csrf}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("resume: %d %s", res.StatusCode, res.body)
	}
	if dashboardtest.Inspect(t, f.Broker, "orchestrate").Paused {
		t.Fatal("the topic is still paused after Resume")
	}
	if res := post(t, h, "/topics/nosuch/fetching/pause", url.Values{"csrf": {csrf}}); res.StatusCode != http.StatusNotFound {
		t.Errorf("pause of an unknown topic: %d, want 404", res.StatusCode)
	}
}
