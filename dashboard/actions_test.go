package dashboard_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/conveyor-jobs/conveyor/dashboard"
	"github.com/conveyor-jobs/conveyor/internal/dashboardtest"
)

func TestDeadLetterActions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		action string // replay or purge
		pick   func(ids []string) url.Values
		moved  int // dead letters of orchestrate affected (of 3)
	}{
		{"replay one", "replay", func(ids []string) url.Values { return url.Values{"id": {ids[1]}} }, 1},
		{"replay selected", "replay", func(ids []string) url.Values { return url.Values{"id": {ids[0], ids[2]}} }, 2},
		{"replay all", "replay", func([]string) url.Values { return url.Values{"all": {"1"}} }, 3},
		{"purge one", "purge", func(ids []string) url.Values { return url.Values{"id": {ids[0]}} }, 1},
		{"purge selected", "purge", func(ids []string) url.Values { return url.Values{"id": {ids[0], ids[1]}} }, 2},
		{"purge all", "purge", func([]string) url.Values { return url.Values{"all": {"1"}} }, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			h := dashboard.New(f.Broker, nil)
			ids := dashboardtest.DeadIDs(t, f.Broker, "orchestrate")
			form := tt.pick(ids)
			form.Set("csrf", csrfToken(t, get(t, h, "/topics/orchestrate").body))

			res := post(t, h, "/topics/orchestrate/dead/"+tt.action, form)
			if res.StatusCode != http.StatusSeeOther {
				t.Fatalf("POST: %d %s", res.StatusCode, res.body)
			}
			loc, _ := url.Parse("http://example.com/topics/orchestrate/dead/" + tt.action)
			back := loc.ResolveReference(mustURL(t, res.Header.Get("Location")))
			if back.Path != "/topics/orchestrate" {
				t.Errorf("redirect to %s, want the topic page", back)
			}
			after := get(t, h, back.RequestURI())
			past := map[string]string{"replay": "Replayed", "purge": "Purged"}[tt.action]
			if !strings.Contains(after.body, past+" ") {
				t.Errorf("no message after %s", tt.name)
			}

			info := dashboardtest.Inspect(t, f.Broker, "orchestrate")
			if want := int64(dashboardtest.OrchestrateDead - tt.moved); info.DeadLetters != want {
				t.Errorf("dead letters %d, want %d", info.DeadLetters, want)
			}
			wantLen := int64(dashboardtest.OrchestrateLength)
			if tt.action == "replay" {
				wantLen += int64(tt.moved)
			}
			if info.Length != wantLen {
				t.Errorf("stream length %d, want %d", info.Length, wantLen)
			}
			// Nothing else moved: the other topic is untouched.
			if s := dashboardtest.Inspect(t, f.Broker, "summarize"); s.DeadLetters != dashboardtest.SummarizeDead || s.Length != dashboardtest.SummarizeLength {
				t.Errorf("summarize changed: %+v", s)
			}
		})
	}
}

func TestReplayedJobIsDeliveredAgain(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	h := dashboard.New(f.Broker, nil)
	dl, err := f.Broker.DeadLetterByID(t.Context(), "summarize", dashboardtest.DeadIDs(t, f.Broker, "summarize")[0])
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{"csrf": {csrfToken(t, get(t, h, "/topics/summarize").body)}, "id": {dl.ID}}
	if res := post(t, h, "/topics/summarize/dead/replay", form); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("replay: %d", res.StatusCode)
	}
	// Worker B reads the 2 unread jobs, then the replayed one, attempt 1.
	ds := dashboardtest.Fetch(t, f.WorkerB, "summarize", 3)
	last := ds[2].Job
	if last.ID != dl.Job.ID || last.Attempt != 1 || last.Failure != nil || string(last.Payload) != string(dl.Job.Payload) {
		t.Errorf("replayed job = %+v, want ID %s, attempt 1, no failure", last, dl.Job.ID)
	}
}

func TestDeleteDelayed(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	h := dashboard.New(f.Broker, nil)
	token := csrfToken(t, get(t, h, "/topics/orchestrate").body)
	res := post(t, h, "/topics/orchestrate/delayed/delete", url.Values{"csrf": {token}, "id": {"later-1"}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("delete: %d %s", res.StatusCode, res.body)
	}
	if info := dashboardtest.Inspect(t, f.Broker, "orchestrate"); info.Delayed != dashboardtest.OrchestrateDelayed-1 {
		t.Errorf("delayed %d, want %d", info.Delayed, dashboardtest.OrchestrateDelayed-1)
	}
	back := mustURL(t, "http://example.com/topics/orchestrate/delayed/delete").ResolveReference(mustURL(t, res.Header.Get("Location")))
	if page := get(t, h, back.RequestURI()).body; strings.Contains(page, "later-1") || !strings.Contains(page, "Deleted the delayed job") {
		t.Error("the deleted job is still listed, or no message")
	}
	res = post(t, h, "/topics/orchestrate/delayed/delete", url.Values{"csrf": {token}, "id": {"later-1"}})
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("deleting it again: %d, want 404", res.StatusCode)
	}
}

func TestActionsRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	h := dashboard.New(f.Broker, nil)
	token := csrfToken(t, get(t, h, "/topics/orchestrate").body)
	other := csrfToken(t, get(t, dashboard.New(f.Broker, nil), "/topics/orchestrate").body) // another process's key
	tests := []struct {
		name   string
		target string
		form   url.Values
		header map[string]string
		want   int
	}{
		{"no token", "/topics/orchestrate/dead/replay", url.Values{"all": {"1"}}, nil, http.StatusForbidden},
		{"forged token", "/topics/orchestrate/dead/replay", url.Values{"all": {"1"}, "csrf": {"1700000000.AAAA"}}, nil, http.StatusForbidden},
		{"token of another process", "/topics/orchestrate/dead/purge", url.Values{"all": {"1"}, "csrf": {other}}, nil, http.StatusForbidden},
		{"cross-site", "/topics/orchestrate/dead/purge", url.Values{"all": {"1"}, "csrf": {token}}, map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"foreign origin", "/topics/orchestrate/dead/purge", url.Values{"all": {"1"}, "csrf": {token}}, map[string]string{"Sec-Fetch-Site": "", "Origin": "https://evil.example"}, http.StatusForbidden},
		{"delete without token", "/topics/orchestrate/delayed/delete", url.Values{"id": {"later-1"}}, nil, http.StatusForbidden},
		{"nothing selected", "/topics/orchestrate/dead/replay", url.Values{"csrf": {token}}, nil, http.StatusBadRequest},
		{"unknown topic", "/topics/nope/dead/replay", url.Values{"csrf": {token}, "all": {"1"}}, nil, http.StatusNotFound},
		{"GET of an action", "/topics/orchestrate/dead/replay", nil, nil, http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var req *http.Request
			if tt.form == nil {
				req = mustRequest(t, http.MethodGet, tt.target, "")
			} else {
				req = mustRequest(t, http.MethodPost, tt.target, tt.form.Encode())
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("Sec-Fetch-Site", "same-origin")
			}
			for k, v := range tt.header {
				if v == "" {
					req.Header.Del(k)
				} else {
					req.Header.Set(k, v)
				}
			}
			if res := do(t, h, req); res.StatusCode != tt.want {
				t.Errorf("status %d, want %d (%s)", res.StatusCode, tt.want, res.body)
			}
		})
	}
	info := dashboardtest.Inspect(t, f.Broker, "orchestrate")
	if info.DeadLetters != dashboardtest.OrchestrateDead || info.Delayed != dashboardtest.OrchestrateDelayed {
		t.Errorf("a refused action changed something: %+v", info)
	}
}

func TestReadOnly(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	h := dashboard.New(f.Broker, &dashboard.Options{ReadOnly: true})
	page := get(t, h, "/topics/orchestrate")
	if page.StatusCode != http.StatusOK {
		t.Fatalf("GET: %d", page.StatusCode)
	}
	// Only the job lookup, a GET form that changes nothing, is left.
	for _, banned := range []string{`method="post"`, "data-action", `name="csrf"`, "Replay all"} {
		if strings.Contains(page.body, banned) {
			t.Errorf("read-only page contains %q", banned)
		}
	}
	if strings.Count(page.body, "<form") != 1 || !strings.Contains(page.body, `<form method="get" action="../topics/orchestrate/job"`) {
		t.Error("read-only page has forms other than the job lookup")
	}
	if !strings.Contains(page.body, "read-only") || !strings.Contains(page.body, "model refused") {
		t.Error("read-only page lacks its badge or the dead letters")
	}
	// A token from a writable dashboard does not help.
	token := csrfToken(t, get(t, dashboard.New(f.Broker, nil), "/topics/orchestrate").body)
	for _, target := range []string{"/topics/orchestrate/dead/replay", "/topics/orchestrate/dead/purge", "/topics/orchestrate/delayed/delete"} {
		res := post(t, h, target, url.Values{"csrf": {token}, "all": {"1"}, "id": {"later-1"}})
		if res.StatusCode != http.StatusForbidden {
			t.Errorf("POST %s: %d, want 403", target, res.StatusCode)
		}
	}
	if info := dashboardtest.Inspect(t, f.Broker, "orchestrate"); info.DeadLetters != dashboardtest.OrchestrateDead || info.Delayed != dashboardtest.OrchestrateDelayed {
		t.Errorf("read-only dashboard changed something: %+v", info)
	}
}

func TestAuth(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	basic := dashboard.New(f.Broker, &dashboard.Options{Auth: dashboard.Auth{User: "ops", Password: "hunter22"}})
	token := dashboard.New(f.Broker, &dashboard.Options{Auth: dashboard.Auth{Token: "t0ken-abc"}})
	tests := []struct {
		name   string
		h      http.Handler
		target string
		set    func(r *http.Request)
		want   int
	}{
		{"basic: none", basic, "/", func(*http.Request) {}, http.StatusUnauthorized},
		{"basic: static assets too", basic, "/static/app.css", func(*http.Request) {}, http.StatusUnauthorized},
		{"basic: wrong password", basic, "/", func(r *http.Request) { r.SetBasicAuth("ops", "hunter2") }, http.StatusUnauthorized},
		{"basic: wrong user", basic, "/", func(r *http.Request) { r.SetBasicAuth("op", "hunter22") }, http.StatusUnauthorized},
		{"basic: right", basic, "/", func(r *http.Request) { r.SetBasicAuth("ops", "hunter22") }, http.StatusOK},
		{"token: none", token, "/api/overview", func(*http.Request) {}, http.StatusUnauthorized},
		{"token: wrong", token, "/api/overview", func(r *http.Request) { r.Header.Set("Authorization", "Bearer t0ken-abd") }, http.StatusUnauthorized},
		{"token: right", token, "/api/overview", func(r *http.Request) { r.Header.Set("Authorization", "Bearer t0ken-abc") }, http.StatusOK},
		{"token: wrong query", token, "/?token=nope", func(*http.Request) {}, http.StatusUnauthorized},
		{"token: query logs in", token, "/?token=t0ken-abc", func(*http.Request) {}, http.StatusSeeOther},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := mustRequest(t, http.MethodGet, tt.target, "")
			tt.set(req)
			res := do(t, tt.h, req)
			if res.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", res.StatusCode, tt.want)
			}
			if res.StatusCode == http.StatusUnauthorized && res.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}

	// The ?token= login sets a cookie that carries no token, and works.
	res := get(t, token, "/?token=t0ken-abc")
	cs := res.Cookies()
	if len(cs) != 1 || strings.Contains(cs[0].Value, "t0ken") || !cs[0].HttpOnly || cs[0].Path != "/" {
		t.Fatalf("login cookies %+v", cs)
	}
	if loc := res.Header.Get("Location"); loc != "./" {
		t.Errorf("login redirects to %q, want ./ (the token dropped from the URL)", loc)
	}
	req := mustRequest(t, http.MethodGet, "/topics/orchestrate", "")
	req.AddCookie(cs[0])
	if res := do(t, token, req); res.StatusCode != http.StatusOK {
		t.Errorf("with the login cookie: %d", res.StatusCode)
	}
}

func TestNewPanicsOnContradictoryAuth(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, a := range []dashboard.Auth{{User: "u", Password: "p", Token: "t"}, {User: "u"}, {Password: "p"}} {
		func() {
			defer func() {
				if r := recover(); r == nil || !strings.HasPrefix(r.(string), "conveyor/dashboard: ") {
					t.Errorf("New with %+v: recovered %v, want a conveyor/dashboard panic", a, r)
				}
			}()
			dashboard.New(f.Broker, &dashboard.Options{Auth: a})
		}()
	}
}

func mustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func mustRequest(t testing.TB, method, target, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, "http://example.com"+target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.RequestURI = target
	return req
}
