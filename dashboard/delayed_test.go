package dashboard_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/dashboard"
	"github.com/conveyor-jobs/conveyor/internal/dashboardtest"
	"github.com/conveyor-jobs/conveyor/job"
)

// TestSnoozedJobShown checks that a delayed job the circuit breaker snoozed
// after a retry shows the snooze, its cause and its real due time, with the
// last error as the handler returned it ("upstream 503", not "retry in
// 288ms: upstream 503").
func TestSnoozedJobShown(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	if _, err := f.Broker.Publish(ctx, broker.Message{Topic: "flaky", ID: "snoozed-1", Payload: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	d := dashboardtest.Fetch(t, f.WorkerA, "flaky", 1)[0]
	// What the server records for the retry middleware's outcome.
	failure := job.FailureOf(&d.Job, job.RetryIn(288*time.Millisecond, errors.New("upstream 503")), job.ReasonError, time.Now())
	if err := f.WorkerA.Retry(ctx, d, 0, failure); err != nil {
		t.Fatal(err)
	}
	d = dashboardtest.Fetch(t, f.WorkerA, "flaky", 1)[0]
	if err := f.WorkerA.SnoozeBecause(ctx, d, time.Minute, "conveyor: circuit open"); err != nil {
		t.Fatal(err)
	}
	js, err := f.Broker.DelayedJobs(ctx, "flaky", 10)
	if err != nil || len(js) != 1 {
		t.Fatalf("DelayedJobs: %v, %v", js, err)
	}
	due := js[0].Due.UTC().Format("2006-01-02 15:04:05 UTC")

	page := get(t, dashboard.New(f.Broker, nil), "/topics/flaky").body
	_, delayed, _ := strings.Cut(page, `id="delayed"`)
	delayed, _, _ = strings.Cut(delayed, "</section>")
	for _, want := range []string{"snoozed-1", `<span class="reason">snoozed</span> conveyor: circuit open`, "last error: upstream 503", `title="` + due + `"`} {
		if !strings.Contains(delayed, want) {
			t.Errorf("delayed panel does not contain %q:\n%s", want, delayed)
		}
	}
	if strings.Contains(delayed, "retry in") {
		t.Errorf("delayed panel shows the retry's delay as the error:\n%s", delayed)
	}
}
