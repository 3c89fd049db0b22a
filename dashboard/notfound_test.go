package dashboard_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/conveyor-jobs/conveyor/dashboard"
	"github.com/conveyor-jobs/conveyor/internal/dashboardtest"
)

// TestDeadLetterActionUnknownID checks that replaying or purging dead
// letters that do not exist answers 404 naming them, instead of "Replayed
// 0", and that a selection only partly found says how many were missing.
func TestDeadLetterActionUnknownID(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	h := dashboard.New(f.Broker, nil)
	token := csrfToken(t, get(t, h, "/topics/orchestrate").body)
	for _, action := range []string{"replay", "purge"} {
		res := post(t, h, "/topics/orchestrate/dead/"+action, url.Values{"csrf": {token}, "id": {"0-1", "0-2"}})
		if res.StatusCode != http.StatusNotFound || !strings.Contains(res.body, "dead letters 0-1, 0-2 of orchestrate") {
			t.Errorf("%s of unknown IDs: %d\n%s", action, res.StatusCode, res.body)
		}
	}
	if info := dashboardtest.Inspect(t, f.Broker, "orchestrate"); info.DeadLetters != dashboardtest.OrchestrateDead {
		t.Fatalf("dead letters %d, want %d", info.DeadLetters, dashboardtest.OrchestrateDead)
	}

	ids := dashboardtest.DeadIDs(t, f.Broker, "orchestrate")
	res := post(t, h, "/topics/orchestrate/dead/replay", url.Values{"csrf": {token}, "id": {ids[0], "0-1"}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("replay of one known and one unknown ID: %d %s", res.StatusCode, res.body)
	}
	back := mustURL(t, "http://example.com/topics/orchestrate/dead/replay").ResolveReference(mustURL(t, res.Header.Get("Location")))
	if page := get(t, h, back.RequestURI()).body; !strings.Contains(page, "Replayed 1 dead letter to the stream. 1 selected dead letter was not found") {
		t.Errorf("no message naming the missing dead letter")
	}
	if info := dashboardtest.Inspect(t, f.Broker, "orchestrate"); info.DeadLetters != dashboardtest.OrchestrateDead-1 {
		t.Errorf("dead letters %d, want %d", info.DeadLetters, dashboardtest.OrchestrateDead-1)
	}
}

// TestStaticFilesOnly checks that /static/ serves the assets and no
// directory listing.
func TestStaticFilesOnly(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	h := dashboard.New(f.Broker, nil)
	if res := get(t, h, "/static/app.css"); res.StatusCode != http.StatusOK {
		t.Errorf("GET /static/app.css: %d", res.StatusCode)
	}
	for _, target := range []string{"/static/", "/static/nosuch.js"} {
		if res := get(t, h, target); res.StatusCode != http.StatusNotFound || strings.Contains(res.body, "app.js") {
			t.Errorf("GET %s: %d\n%s", target, res.StatusCode, res.body)
		}
	}
}

// TestOverviewJSONDurations checks that /api/overview gives a consumer's
// idle time in seconds, as idle_seconds.
func TestOverviewJSONDurations(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	h := dashboard.New(f.Broker, nil)
	res := get(t, h, "/api/overview")
	var ov struct {
		Topics []struct {
			Groups []struct {
				Consumers []map[string]any `json:"consumers"`
			} `json:"groups"`
		} `json:"topics"`
	}
	if err := json.Unmarshal([]byte(res.body), &ov); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, tp := range ov.Topics {
		for _, g := range tp.Groups {
			for _, c := range g.Consumers {
				n++
				if s, ok := c["idle_seconds"].(float64); !ok || s < 0 || s > 3600 || c["idle"] != nil {
					t.Errorf("consumer %v: want idle_seconds in seconds and no idle", c)
				}
			}
		}
	}
	if n == 0 {
		t.Fatalf("no consumer in /api/overview:\n%s", res.body)
	}
}
