package dashboard_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/redis"
	"github.com/conveyor-jobs/conveyor/internal/redistest"
	"github.com/conveyor-jobs/conveyor/job"
)

// fixture is a Redis namespace seeded with jobs in every state.
type fixture struct {
	srv     *redistest.Server
	b       *redis.Broker // the dashboard's broker
	workerA *redis.Broker
	workerB *redis.Broker
}

// openBroker opens a broker on srv's namespace, closed at cleanup.
func openBroker(t testing.TB, srv *redistest.Server, consumer string) *redis.Broker {
	t.Helper()
	b, err := redis.Open(srv.URL(), &redis.Options{
		Namespace:     srv.Namespace,
		Consumer:      consumer,
		Block:         50 * time.Millisecond,
		ClaimInterval: time.Hour, // no recovery or promotion during a test
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// Counts the seed leaves behind (see seed).
const (
	orchestrateLength  = 6 // 10 published; 4 settled by retry or dead letter
	orchestratePending = 1
	orchestrateDelayed = 2 // one retry, one published with a delay
	orchestrateDead    = 3
	summarizeLength    = 4
	summarizePending   = 2
	summarizeDead      = 1
)

func newFixture(t testing.TB, opts ...redistest.Option) *fixture {
	t.Helper()
	srv := redistest.Start(t, opts...)
	f := &fixture{
		srv:     srv,
		b:       openBroker(t, srv, "dashboard"),
		workerA: openBroker(t, srv, "worker-a-4121"),
		workerB: openBroker(t, srv, "worker-b-4177"),
	}
	f.seed(t)
	return f
}

// seed fills two topics:
//
//	orchestrate: 10 published and 1 delayed by an hour (ID later-1); worker A
//	  fetches 5: keeps 1 pending, retries 1 in an hour, dead-letters 3.
//	summarize: 5 published; worker B fetches 3: keeps 2 pending,
//	  dead-letters 1.
func (f *fixture) seed(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	publish(t, f.b, "orchestrate", 10)
	if _, err := f.b.Publish(ctx, broker.Message{Topic: "orchestrate", ID: "later-1", Payload: []byte(`{"prompt":"tomorrow"}`), Delay: time.Hour}); err != nil {
		t.Fatal(err)
	}
	ds := fetch(t, f.workerA, "orchestrate", 5)
	if err := f.workerA.Retry(ctx, ds[1], time.Hour, job.Failure{Error: "upstream 503", Reason: job.ReasonError, Origin: "orchestrate", At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	for i, d := range ds[2:5] {
		fl := job.Failure{
			Error:   fmt.Sprintf("model refused: context length exceeded (%d tokens)", 9000+i),
			Reason:  job.ReasonExhausted,
			Handler: "orchestrate.Plan",
			Origin:  "orchestrate",
			At:      time.Now(),
		}
		if err := f.workerA.DeadLetter(ctx, d, fl); err != nil {
			t.Fatal(err)
		}
	}
	publish(t, f.b, "summarize", 5)
	ds = fetch(t, f.workerB, "summarize", 3)
	if err := f.workerB.DeadLetter(ctx, ds[2], job.Failure{Error: "invalid character 'x' looking for beginning of value", Reason: job.ReasonUndecodable, Origin: "summarize", At: time.Now()}); err != nil {
		t.Fatal(err)
	}
}

// publish publishes n JSON jobs to topic.
func publish(t testing.TB, b broker.Broker, topic string, n int) {
	t.Helper()
	ms := make([]broker.Message, n)
	for i := range ms {
		ms[i] = broker.Message{
			Topic:   topic,
			Payload: []byte(fmt.Sprintf(`{"run":"r-%03d","prompt":"step %d of the plan","tokens":%d}`, i, i, 100*i)),
			Headers: map[string]string{"tenant": "acme"},
		}
	}
	if _, err := b.PublishBatch(context.Background(), ms); err != nil {
		t.Fatal(err)
	}
}

// fetch fetches exactly n deliveries of topic, failing after a deadline.
func fetch(t testing.TB, b broker.Broker, topic string, n int) []*broker.Delivery {
	t.Helper()
	var out []*broker.Delivery
	deadline := time.Now().Add(5 * time.Second)
	for len(out) < n {
		if time.Now().After(deadline) {
			t.Fatalf("fetched %d of %d from %s", len(out), n, topic)
		}
		ds, err := b.Fetch(context.Background(), []string{topic}, n-len(out))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ds...)
	}
	return out
}

// inspect returns topic's state.
func inspect(t testing.TB, b broker.Inspector, topic string) *broker.TopicInfo {
	t.Helper()
	info, err := b.Inspect(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// deadIDs returns the IDs of topic's dead letters.
func deadIDs(t testing.TB, b *redis.Broker, topic string) []string {
	t.Helper()
	dls, err := b.DeadLetters(context.Background(), topic, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(dls))
	for i, d := range dls {
		ids[i] = d.ID
	}
	return ids
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
