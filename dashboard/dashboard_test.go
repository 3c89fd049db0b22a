package dashboard_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/memory"
	"github.com/conveyor-jobs/conveyor/dashboard"
	"github.com/conveyor-jobs/conveyor/internal/clocktest"
	"github.com/conveyor-jobs/conveyor/internal/dashboardtest"
	"github.com/conveyor-jobs/conveyor/internal/redistest"
	"github.com/conveyor-jobs/conveyor/job"
)

func TestOverview(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	clk := clocktest.New(time.Now())
	h := dashboard.New(f.Broker, &dashboard.Options{Sampling: dashboard.Sampling{Now: clk.Now}})

	res := get(t, h, "/")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /: %d %s", res.StatusCode, res.body)
	}
	for _, want := range []string{`href="./topics/orchestrate"`, `href="./topics/summarize"`, `data-refresh="./fragments/overview"`, `src="./static/app.js"`} {
		if !strings.Contains(res.body, want) {
			t.Errorf("overview lacks %s", want)
		}
	}

	ov := apiOverview(t, h)
	tests := []struct {
		topic                               string
		length, pending, lag, delayed, dead int64
		consumers                           int
	}{
		{"orchestrate", dashboardtest.OrchestrateLength, dashboardtest.OrchestratePending, dashboardtest.OrchestrateLength - dashboardtest.OrchestratePending, dashboardtest.OrchestrateDelayed, dashboardtest.OrchestrateDead, 1},
		{"summarize", dashboardtest.SummarizeLength, dashboardtest.SummarizePending, dashboardtest.SummarizeLength - dashboardtest.SummarizePending, 0, dashboardtest.SummarizeDead, 1},
	}
	if len(ov.Topics) != len(tests) {
		t.Fatalf("overview has %d topics, want %d", len(ov.Topics), len(tests))
	}
	for i, tt := range tests {
		got := ov.Topics[i]
		if got.Topic != tt.topic || got.Length != tt.length || got.Pending != tt.pending || got.Lag != tt.lag ||
			got.Delayed != tt.delayed || got.DeadLetters != tt.dead || got.Consumers != tt.consumers {
			t.Errorf("topic %d = %+v, want %+v", i, got, tt)
		}
		if got.HasRates {
			t.Errorf("%s has rates after one sample", got.Topic)
		}
	}

	// The fragment renders the same table, with the counts.
	frag := get(t, h, "/fragments/overview")
	if frag.StatusCode != http.StatusOK || strings.Contains(frag.body, "<html") || !strings.Contains(frag.body, `data-topic="orchestrate"`) {
		t.Fatalf("fragment: %d %.200s", frag.StatusCode, frag.body)
	}

	// Within the interval, the cached sample is served: no new reading.
	dashboardtest.Publish(t, f.Broker, "summarize", 20)
	if got := apiOverview(t, h).Topics[1].Length; got != dashboardtest.SummarizeLength {
		t.Errorf("within the interval the sample changed: summarize length %d", got)
	}
	// After it, a new reading gives rates: 20 added in 2 s.
	clk.Advance(2 * time.Second)
	ov = apiOverview(t, h)
	sum := ov.Topics[1]
	if !sum.HasRates || sum.EnqueueRate != 10 {
		t.Errorf("summarize enqueue rate %v (has rates %v), want 10/s", sum.EnqueueRate, sum.HasRates)
	}
	if sum.Length != dashboardtest.SummarizeLength+20 {
		t.Errorf("summarize length %d, want %d", sum.Length, dashboardtest.SummarizeLength+20)
	}
	orch := ov.Topics[0]
	if !orch.HasRates || orch.EnqueueRate != 0 || orch.ProcessRate != 0 {
		t.Errorf("orchestrate rates %v/%v, want 0/0", orch.EnqueueRate, orch.ProcessRate)
	}
	if !strings.Contains(get(t, h, "/").body, `<svg class="chart"`) {
		t.Error("no rate chart after two samples")
	}
}

func TestProcessRate(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	clk := clocktest.New(time.Now())
	h := dashboard.New(f.Broker, &dashboard.Options{Sampling: dashboard.Sampling{Now: clk.Now, Interval: time.Second}})
	apiOverview(t, h)
	// Worker A reads 4 more and settles all 4 plus its old pending one: 5
	// settled (4 newly read, pending back from 1 to 0) in 1 s.
	ctx := context.Background()
	ds := dashboardtest.Fetch(t, f.WorkerA, "orchestrate", 4)
	if err := f.WorkerA.Ack(ctx, ds...); err != nil {
		t.Fatal(err)
	}
	pe, err := f.Broker.PendingEntries(ctx, "orchestrate", 10)
	if err != nil || len(pe) != 1 {
		t.Fatalf("pending entries %v, %v", pe, err)
	}
	if err := f.WorkerA.Ack(ctx, &broker.Delivery{Receipt: pe[0].ID, Job: ds[0].Job}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	orch := apiOverview(t, h).Topics[0]
	if orch.ProcessRate != 5 || orch.EnqueueRate != 0 {
		t.Errorf("orchestrate process rate %v, enqueue %v; want 5/s and 0/s", orch.ProcessRate, orch.EnqueueRate)
	}
}

func TestTopicPage(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	h := dashboard.New(f.Broker, nil)
	res := get(t, h, "/topics/orchestrate")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET topic: %d %s", res.StatusCode, res.body)
	}
	pending, err := f.Broker.PendingEntries(context.Background(), "orchestrate", 10)
	if err != nil || len(pending) != dashboardtest.OrchestratePending {
		t.Fatalf("pending %v %v", pending, err)
	}
	dead := dashboardtest.DeadIDs(t, f.Broker, "orchestrate")
	wants := []string{
		"worker-a-4121",           // consumer
		pending[0].ID,             // oldest pending entry
		"later-1", "upstream 503", // delayed jobs, one a retry with its error
		dead[0], dead[2], // dead letters
		"model refused: context length exceeded (9000 tokens)", // their error
		"exhausted", "orchestrate.Plan", // reason and handler
		"&#34;prompt&#34;: &#34;step",                // pretty-printed payload
		`action="../topics/orchestrate/dead/replay"`, // actions
		`action="../topics/orchestrate/delayed/delete"`,
		`href="../static/app.css"`,
	}
	for _, w := range wants {
		if !strings.Contains(res.body, w) {
			t.Errorf("topic page lacks %q", w)
		}
	}
	if n := strings.Count(res.body, `name="id" value="`+dead[0]+`"`); n < 3 {
		t.Errorf("dead letter %s has %d id fields, want checkbox, replay and purge", dead[0], n)
	}

	stats := get(t, h, "/topics/summarize/fragments/stats")
	if stats.StatusCode != http.StatusOK || !strings.Contains(stats.body, "worker-b-4177") || strings.Contains(stats.body, "<html") {
		t.Errorf("stats fragment: %d %.300s", stats.StatusCode, stats.body)
	}

	if res := get(t, h, "/topics/nope"); res.StatusCode != http.StatusNotFound {
		t.Errorf("unknown topic: %d", res.StatusCode)
	}
}

func TestDeadLetterPaging(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	b := dashboardtest.OpenBroker(t, srv, "w")
	dashboardtest.Publish(t, b, "bulk", 7)
	for _, d := range dashboardtest.Fetch(t, b, "bulk", 7) {
		if err := b.DeadLetter(context.Background(), d, brokerFailure()); err != nil {
			t.Fatal(err)
		}
	}
	h := dashboard.New(b, &dashboard.Options{Display: dashboard.Display{PageSize: 3}})
	ids := dashboardtest.DeadIDs(t, b, "bulk")
	rowRE := regexp.MustCompile(`<tr id="dl-([^"]+)"`)
	var seen []string
	target := "/topics/bulk"
	next := regexp.MustCompile(`href="\.\./topics/bulk\?after=([^"#]+)#dead">Next`)
	for range 5 {
		res := get(t, h, target)
		for _, m := range rowRE.FindAllStringSubmatch(res.body, -1) {
			seen = append(seen, m[1])
		}
		m := next.FindStringSubmatch(res.body)
		if m == nil {
			break
		}
		target = "/topics/bulk?after=" + m[1]
	}
	if !slices.Equal(seen, ids) {
		t.Errorf("paged through %v, want %v", seen, ids)
	}
}

func TestMemoryBroker(t *testing.T) {
	t.Parallel()
	b := memory.New(nil)
	t.Cleanup(func() { _ = b.Close() })
	dashboardtest.Publish(t, b, "emails", 3)
	ds := dashboardtest.Fetch(t, b, "emails", 1)
	if err := b.DeadLetter(context.Background(), ds[0], brokerFailure()); err != nil {
		t.Fatal(err)
	}
	h := dashboard.New(b, nil)
	ov := apiOverview(t, h)
	if len(ov.Topics) != 1 || ov.Topics[0].Length != 2 || ov.Topics[0].DeadLetters != 1 {
		t.Fatalf("overview %+v", ov)
	}
	page := get(t, h, "/topics/emails")
	if page.StatusCode != http.StatusOK || !strings.Contains(page.body, "disk full") {
		t.Fatalf("topic page: %d", page.StatusCode)
	}
	res := post(t, h, "/topics/emails/dead/replay", url.Values{"csrf": {csrfToken(t, page.body)}, "all": {"1"}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("replay all: %d %s", res.StatusCode, res.body)
	}
	if info := dashboardtest.Inspect(t, b, "emails"); info.DeadLetters != 0 || info.Length != 3 {
		t.Errorf("after replay: %+v", info)
	}
}

func TestPasswordNeverRendered(t *testing.T) {
	t.Parallel()
	const password = "pa$$-w0rd/secret"
	f := newFixture(t, redistest.WithPassword(password))
	if !strings.Contains(f.Server.URL(), "@") {
		t.Skip("the REDIS_URL path sets no password here")
	}
	h := dashboard.New(f.Broker, &dashboard.Options{Display: dashboard.Display{RedisURL: f.Server.URL() + "?dial_timeout=3s", Namespace: f.Server.Namespace}})
	enc := url.QueryEscape(password)
	for _, target := range []string{"/", "/topics/orchestrate", "/fragments/overview", "/api/overview", "/topics/orchestrate/fragments/stats", "/topics/missing"} {
		res := get(t, h, target)
		if strings.Contains(res.body, password) || strings.Contains(res.body, enc) || strings.Contains(res.body, "secret") {
			t.Errorf("%s shows the password", target)
		}
	}
	if home := get(t, h, "/").body; !strings.Contains(home, "xxxxx@") || !strings.Contains(home, f.Server.Namespace) {
		t.Errorf("header does not show the redacted URL and namespace")
	}
}

func brokerFailure() job.Failure {
	return job.Failure{Error: "disk full", Reason: job.ReasonPermanent, At: time.Now()}
}

func TestUntrustedTextIsEscaped(t *testing.T) {
	t.Parallel()
	b := memory.New(nil)
	t.Cleanup(func() { _ = b.Close() })
	const evil = `<script>alert("x")</script><img src=x onerror=alert(1)>`
	if _, err := b.Publish(context.Background(), broker.Message{Topic: "t", Payload: []byte(evil), Headers: map[string]string{"x": evil}}); err != nil {
		t.Fatal(err)
	}
	ds := dashboardtest.Fetch(t, b, "t", 1)
	if err := b.DeadLetter(context.Background(), ds[0], job.Failure{Error: evil, Reason: evil, Handler: evil, Origin: evil}); err != nil {
		t.Fatal(err)
	}
	h := dashboard.New(b, nil)
	for _, target := range []string{"/topics/t", "/"} {
		res := get(t, h, target)
		if strings.Contains(res.body, "<script>alert") || strings.Contains(res.body, "<img src=x") {
			t.Errorf("%s renders untrusted text as HTML", target)
		}
	}
	if body := get(t, h, "/topics/t").body; !strings.Contains(body, "&lt;script&gt;alert") {
		t.Error("the escaped payload or error is not shown")
	}
	if csp := get(t, h, "/").Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("CSP %q", csp)
	}
}
