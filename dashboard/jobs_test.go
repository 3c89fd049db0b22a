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

// TestPendingProgress: the pending entries of a topic show the progress
// their jobs reported, as a bar with the percentage and the message; an
// entry without progress shows none.
func TestPendingProgress(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.Broker.Publish(ctx, broker.Message{Topic: "summarize", Payload: []byte(`{}`), ID: "with-progress"}); err != nil {
		t.Fatal(err)
	}
	ds := dashboardtest.Fetch(t, f.WorkerB, "summarize", 3) // the two the fixture left unread, and this one
	var d *broker.Delivery
	for _, x := range ds {
		if x.Job.ID == "with-progress" {
			d = x
		}
	}
	if d == nil {
		t.Fatalf("fetched %v, not the job with progress", ds)
	}
	if err := f.WorkerB.RecordProgress(ctx, broker.ProgressUpdate{Delivery: d, Progress: broker.Progress{Fraction: 0.375, Message: "step 3 of 8 <b>", At: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	h := dashboard.New(f.Broker, nil)
	page := get(t, h, "/topics/summarize").body
	for _, want := range []string{
		`<th class="l">Progress</th>`,
		`<progress max="1" value="0.375">38%</progress> <span class="pct">38%</span> <span class="msg">step 3 of 8 &lt;b&gt;</span>`,
		`<a href="../topics/summarize/job?id=` + url.QueryEscape(d.Receipt) + `">`,
		`id="job-lookup"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("topic page lacks %s", want)
		}
	}
	if n := strings.Count(page, `<progress `); n != 1 {
		t.Errorf("%d progress bars, want 1 (the other pending entries reported none)", n)
	}
}

// TestJobPage looks jobs up by ID: a succeeded job with its result, a
// running one with its progress (also by its entry ID, as the pending
// list links it), a dead one with its failure, and one not held (404).
func TestJobPage(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	for _, id := range []string{"done-1", "run-1"} {
		if _, err := f.Broker.Publish(ctx, broker.Message{Topic: "steps", Payload: []byte(`{}`), ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	ds := dashboardtest.Fetch(t, f.WorkerA, "steps", 2)
	ds[0].Result = []byte(`{"answer":"<42>"}`)
	if err := f.WorkerA.Ack(ctx, ds[0]); err != nil {
		t.Fatal(err)
	}
	if err := f.WorkerA.RecordProgress(ctx, broker.ProgressUpdate{Delivery: ds[1], Progress: broker.Progress{Fraction: 0.5, Message: "halfway", At: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	h := dashboard.New(f.Broker, nil)

	res := get(t, h, "/topics/steps/job?id=done-1")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("succeeded job: %d", res.StatusCode)
	}
	for _, want := range []string{`id="job-state">succeeded<`, `Result kept until`, `&#34;answer&#34;: &#34;&lt;42&gt;&#34;`, `../../topics/steps`} {
		if !strings.Contains(res.body, want) {
			t.Errorf("succeeded job page lacks %s", want)
		}
	}
	for _, target := range []string{"/topics/steps/job?id=run-1", "/topics/steps/job?id=" + url.QueryEscape(ds[1].Receipt)} {
		res = get(t, h, target)
		if res.StatusCode != http.StatusOK || !strings.Contains(res.body, `id="job-state">running<`) ||
			!strings.Contains(res.body, `<progress max="1" value="0.5">50%</progress>`) || !strings.Contains(res.body, "halfway") {
			t.Errorf("%s: %d, want the running job with its progress:\n%s", target, res.StatusCode, res.body)
		}
	}
	// A dead letter of the fixture: its failure is shown.
	dls, err := f.Broker.DeadLetters(ctx, "orchestrate", "", 1)
	if err != nil || len(dls) != 1 {
		t.Fatalf("DeadLetters = %v, %v", dls, err)
	}
	res = get(t, h, "/topics/orchestrate/job?id="+url.QueryEscape(dls[0].Job.ID))
	if res.StatusCode != http.StatusOK || !strings.Contains(res.body, `id="job-state">dead<`) || !strings.Contains(res.body, dls[0].Job.Failure.Error) {
		t.Errorf("dead job: %d\n%s", res.StatusCode, res.body)
	}

	res = get(t, h, "/topics/steps/job?id=nope")
	if res.StatusCode != http.StatusNotFound || !strings.Contains(res.body, "acknowledged without a result (such jobs are not kept)") {
		t.Errorf("unknown job: %d\n%s", res.StatusCode, res.body)
	}
	if res := get(t, h, "/topics/steps/job"); res.StatusCode != http.StatusBadRequest {
		t.Errorf("no id: %d, want 400", res.StatusCode)
	}
	if res := get(t, h, "/topics/no-such-topic/job?id=x"); res.StatusCode != http.StatusNotFound {
		t.Errorf("unknown topic: %d, want 404", res.StatusCode)
	}
}

// TestJobPageMemory: the memory broker has the same powers.
func TestJobPageMemory(t *testing.T) {
	t.Parallel()
	b := memory.New(&memory.Options{FetchWait: -1})
	t.Cleanup(func() { _ = b.Close() })
	ctx := context.Background()
	if _, err := b.Publish(ctx, broker.Message{Topic: "steps", Payload: []byte(`{}`), ID: "j"}); err != nil {
		t.Fatal(err)
	}
	ds, err := b.Fetch(ctx, []string{"steps"}, 1)
	if err != nil || len(ds) != 1 {
		t.Fatalf("Fetch = %v, %v", ds, err)
	}
	if err := b.RecordProgress(ctx, broker.ProgressUpdate{Delivery: ds[0], Progress: broker.Progress{Fraction: 0.25, At: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	h := dashboard.New(b, nil)
	if page := get(t, h, "/topics/steps").body; !strings.Contains(page, `<progress max="1" value="0.25">25%</progress>`) {
		t.Errorf("topic page has no progress:\n%s", page)
	}
	ds[0].Result = []byte(`"ok"`)
	if err := b.Ack(ctx, ds[0]); err != nil {
		t.Fatal(err)
	}
	if res := get(t, h, "/topics/steps/job?id=j"); res.StatusCode != http.StatusOK || !strings.Contains(res.body, `id="job-state">succeeded<`) {
		t.Errorf("job page: %d\n%s", res.StatusCode, res.body)
	}
}
