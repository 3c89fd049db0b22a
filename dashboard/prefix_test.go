package dashboard_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/conveyor-jobs/conveyor/dashboard"
	"github.com/conveyor-jobs/conveyor/internal/dashboardtest"
)

// linkRE finds every URL a page refers to.
var linkRE = regexp.MustCompile(`(href|src|action|formaction|data-refresh)="([^"]*)"`)

func TestMountedUnderPrefix(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	mux := http.NewServeMux()
	mux.Handle("/ops/queues/", http.StripPrefix("/ops/queues", dashboard.New(f.Broker, nil)))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("a link left the prefix: %s", r.URL)
		http.NotFound(w, r)
	})

	// Crawl every link from the overview and a topic page: each resolves
	// under the prefix and answers 200.
	visited := map[string]bool{}
	var token string
	var actions []*url.URL
	for _, page := range []string{"/ops/queues/", "/ops/queues/topics/orchestrate"} {
		base := mustURL(t, "http://example.com"+page)
		res := do(t, mux, mustRequest(t, http.MethodGet, page, ""))
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", page, res.StatusCode)
		}
		if strings.Contains(res.body, `"/`) {
			t.Errorf("%s has an absolute link", page)
		}
		if m := csrfRE.FindStringSubmatch(res.body); m != nil {
			token = m[1]
		}
		for _, m := range linkRE.FindAllStringSubmatch(res.body, -1) {
			u := base.ResolveReference(mustURL(t, strings.ReplaceAll(m[2], "&amp;", "&")))
			if !strings.HasPrefix(u.Path, "/ops/queues/") {
				t.Errorf("%s: %s=%q resolves to %s, outside the prefix", page, m[1], m[2], u.Path)
				continue
			}
			if m[1] == "action" || m[1] == "formaction" {
				actions = append(actions, u)
				continue
			}
			if visited[u.RequestURI()] {
				continue
			}
			visited[u.RequestURI()] = true
			if res := do(t, mux, mustRequest(t, http.MethodGet, u.RequestURI(), "")); res.StatusCode != http.StatusOK {
				t.Errorf("%s: GET %s: %d", page, u.RequestURI(), res.StatusCode)
			}
		}
	}
	for _, want := range []string{"/ops/queues/static/app.css", "/ops/queues/fragments/overview", "/ops/queues/topics/summarize", "/ops/queues/topics/orchestrate/fragments/stats"} {
		if !visited[want] {
			t.Errorf("no link to %s", want)
		}
	}
	if len(actions) == 0 {
		t.Fatal("no actions on the topic page")
	}

	// An action posted to its resolved URL redirects back to the topic page
	// under the prefix.
	for _, u := range actions {
		if strings.HasSuffix(u.Path, "/dead/replay") {
			req := mustRequest(t, http.MethodPost, u.RequestURI(), url.Values{"csrf": {token}, "all": {"1"}}.Encode())
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			res := do(t, mux, req)
			if res.StatusCode != http.StatusSeeOther {
				t.Fatalf("POST %s: %d %s", u.Path, res.StatusCode, res.body)
			}
			back := u.ResolveReference(mustURL(t, res.Header.Get("Location")))
			if back.Path != "/ops/queues/topics/orchestrate" {
				t.Errorf("redirected to %s", back)
			}
			if info := dashboardtest.Inspect(t, f.Broker, "orchestrate"); info.DeadLetters != 0 {
				t.Errorf("dead letters after replay all: %d", info.DeadLetters)
			}
			break
		}
	}

	// A token login under the prefix scopes its cookie to the prefix.
	tm := http.NewServeMux()
	tm.Handle("/ops/queues/", http.StripPrefix("/ops/queues", dashboard.New(f.Broker, &dashboard.Options{Auth: dashboard.Auth{Token: "abc123"}})))
	res := do(t, tm, mustRequest(t, http.MethodGet, "/ops/queues/topics/summarize?token=abc123", ""))
	if cs := res.Cookies(); res.StatusCode != http.StatusSeeOther || len(cs) != 1 || cs[0].Path != "/ops/queues/" {
		t.Errorf("login under the prefix: %d %+v", res.StatusCode, cs)
	}
	if loc := res.Header.Get("Location"); loc != "./summarize" {
		t.Errorf("login redirects to %q", loc)
	}
}
