package dashboard_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/conveyor-jobs/conveyor/internal/dashboardtest"
	"github.com/conveyor-jobs/conveyor/internal/redistest"
)

// newFixture starts a Redis and seeds it as dashboardtest.Seed describes.
func newFixture(t testing.TB, opts ...redistest.Option) *dashboardtest.Fixture {
	t.Helper()
	return dashboardtest.Seed(t, redistest.Start(t, opts...))
}

// response is a recorded response with its body read.
type response struct {
	*http.Response
	body string
}

// do serves req with h.
func do(t testing.TB, h http.Handler, req *http.Request) response {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := rec.Result()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{res, string(body)}
}

// get serves a GET of target.
func get(t testing.TB, h http.Handler, target string) response {
	t.Helper()
	return do(t, h, httptest.NewRequest(http.MethodGet, target, nil))
}

// post serves a same-origin form POST of target.
func post(t testing.TB, h http.Handler, target string, form url.Values) response {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, target, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	return do(t, h, req)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrfToken returns the CSRF token rendered in page.
func csrfToken(t testing.TB, page string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no CSRF token in the page")
	}
	return m[1]
}

// overviewJSON is the part of /api/overview the tests read.
type overviewJSON struct {
	Topics []struct {
		Topic       string  `json:"topic"`
		Length      int64   `json:"length"`
		Pending     int64   `json:"pending"`
		Lag         int64   `json:"lag"`
		Delayed     int64   `json:"delayed"`
		DeadLetters int64   `json:"dead_letters"`
		Consumers   int     `json:"consumers"`
		HasRates    bool    `json:"has_rates"`
		EnqueueRate float64 `json:"enqueue_rate"`
		ProcessRate float64 `json:"process_rate"`
	} `json:"topics"`
}

func apiOverview(t testing.TB, h http.Handler) overviewJSON {
	t.Helper()
	res := get(t, h, "/api/overview")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/overview: %d %s", res.StatusCode, res.body)
	}
	var ov overviewJSON
	if err := json.Unmarshal([]byte(res.body), &ov); err != nil {
		t.Fatal(err)
	}
	return ov
}
