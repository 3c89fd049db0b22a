package dashboard_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/dashboard"
	"github.com/conveyor-jobs/conveyor/internal/dashboardtest"
	"github.com/conveyor-jobs/conveyor/job"
)

// TestUniqueKeyShown: delayed jobs and dead letters show their unique key,
// and replaying a dead letter whose key another job holds is refused with
// 409 Conflict naming the holder.
func TestUniqueKeyShown(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	if _, err := f.Broker.Publish(ctx, broker.Message{Topic: "reports", ID: "r-later", Payload: []byte(`{}`), UniqueKey: "monthly-close", Delay: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Broker.Publish(ctx, broker.Message{Topic: "reports", ID: "r-now", Payload: []byte(`{}`), UniqueKey: "daily-digest"}); err != nil {
		t.Fatal(err)
	}
	d := dashboardtest.Fetch(t, f.WorkerA, "reports", 1)[0]
	if err := f.WorkerA.DeadLetter(ctx, d, job.Failure{Error: "bad", Reason: job.ReasonPermanent}); err != nil {
		t.Fatal(err)
	}
	h := dashboard.New(f.Broker, nil)
	page := get(t, h, "/topics/reports").body
	_, delayed, _ := strings.Cut(page, `id="delayed"`)
	delayed, _, _ = strings.Cut(delayed, "</section>")
	if !strings.Contains(delayed, "unique key monthly-close") {
		t.Errorf("delayed panel does not show the unique key:\n%s", delayed)
	}
	if !strings.Contains(page, "job r-now · unique key daily-digest") {
		t.Errorf("dead letters do not show the unique key:\n%s", page)
	}

	if _, err := f.Broker.Publish(ctx, broker.Message{Topic: "reports", ID: "r-again", Payload: []byte(`{}`), UniqueKey: "daily-digest"}); err != nil {
		t.Fatal(err)
	}
	form := url.Values{"csrf": {csrfToken(t, page)}, "all": {"1"}}
	res := post(t, h, "/topics/reports/dead/replay", form)
	if res.StatusCode != http.StatusConflict || !strings.Contains(res.body, "r-again") {
		t.Fatalf("replay of a dead letter whose key is held: %d\n%s", res.StatusCode, res.body)
	}
}
