package dashboard_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/memory"
	"github.com/conveyor-jobs/conveyor/dashboard"
	"github.com/conveyor-jobs/conveyor/schedule"
)

// TestSchedulesPanel checks the overview's schedules panel: each
// registered entry with its spec, zone, policy, next run, last run and last
// job ID, producer text escaped; and no panel for a broker that keeps no
// schedules.
func TestSchedulesPanel(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 30, 0, time.UTC)
	clock := func() time.Time { return now }
	b := memory.New(&memory.Options{Now: clock})
	t.Cleanup(func() { _ = b.Close() })
	ctx := context.Background()
	h := dashboard.New(b, &dashboard.Options{Sampling: dashboard.Sampling{Now: clock}})

	if page := get(t, h, "/"); !strings.Contains(page.body, `id="schedules"`) || !strings.Contains(page.body, "No schedules yet") {
		t.Errorf("overview with no schedules lacks the empty panel:\n%s", page.body)
	}

	for _, e := range []broker.ScheduleEntry{
		{Name: "minutely", Topic: "reports", Spec: "0 * * * * *", TimeZone: "Europe/Paris", Missed: "catch-up", CatchUp: 3},
		{Name: "<script>x</script>", Topic: "t", Spec: "@every 1h", Missed: "skip"},
	} {
		if _, err := b.RegisterSchedule(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	tick := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	if _, fired, err := b.PublishTick(ctx, "minutely", tick, broker.Message{Topic: "reports", ID: schedule.JobID("minutely", tick)}); err != nil || !fired {
		t.Fatalf("PublishTick: %v %v", fired, err)
	}

	page := get(t, h, "/")
	if page.StatusCode != http.StatusOK {
		t.Fatalf("overview: %d", page.StatusCode)
	}
	if strings.Contains(page.body, "<script>x") {
		t.Error("entry name not escaped")
	}
	row := between(t, page.body, `<tr data-schedule="minutely">`, "</tr>")
	for _, want := range []string{"reports", "0 * * * * *", "Europe/Paris", "catch-up 3 ticks",
		"2026-03-01 12:01:00", "in 30.0s", // next run
		"2026-03-01 12:00:00", "30.0s ago", // last run
		"sched:minutely:1772366400000"} {
		if !strings.Contains(row, want) {
			t.Errorf("row lacks %q:\n%s", want, row)
		}
	}
	row = between(t, page.body, `<tr data-schedule="&lt;script&gt;x&lt;/script&gt;">`, "</tr>")
	for _, want := range []string{"@every 1h", "UTC", "skip", "2026-03-01 13:00:00", "never"} {
		if !strings.Contains(row, want) {
			t.Errorf("row lacks %q:\n%s", want, row)
		}
	}

	// A broker without the power: no panel.
	plain := dashboard.New(struct{ broker.Inspector }{b}, nil)
	if page := get(t, plain, "/"); page.StatusCode != http.StatusOK || strings.Contains(page.body, `id="schedules"`) {
		t.Errorf("overview of a broker without schedules: %d, panel shown", page.StatusCode)
	}
}

// between returns the text of s from the first from to the next to.
func between(t *testing.T, s, from, to string) string {
	t.Helper()
	_, rest, ok := strings.Cut(s, from)
	if !ok {
		t.Fatalf("no %q in:\n%s", from, s)
	}
	row, _, _ := strings.Cut(rest, to)
	return row
}
