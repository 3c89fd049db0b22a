package schedule_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/memory"
	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/schedule"
)

func TestNewRejectsBadEntries(t *testing.T) {
	b := memory.New(nil)
	defer b.Close()
	ok := schedule.Entry{Name: "ok", Spec: "*/5 * * * *", Topic: "t"}
	cases := []struct {
		name    string
		entries []schedule.Entry
		want    string
	}{
		{"no name", []schedule.Entry{{Spec: "@daily", Topic: "t"}}, "entry 0 has no name"},
		{"duplicate", []schedule.Entry{ok, ok}, `entries 0 and 1 are both named "ok"`},
		{"no topic", []schedule.Entry{{Name: "a", Spec: "@daily"}}, `entry "a": no topic`},
		{"bad spec", []schedule.Entry{{Name: "a", Spec: "61 * * * *", Topic: "t"}}, `entry "a": spec "61 * * * *":`},
		{"bad interval", []schedule.Entry{{Name: "a", Spec: "@every soon", Topic: "t"}}, `entry "a": spec "@every soon":`},
		{"no spec", []schedule.Entry{{Name: "a", Topic: "t"}}, `entry "a": no Spec nor Every`},
		{"both", []schedule.Entry{{Name: "a", Spec: "@daily", Every: time.Hour, Topic: "t"}}, `entry "a": both Spec and Every`},
		{"bad zone", []schedule.Entry{{Name: "a", Spec: "@daily", TimeZone: "Mars/Olympus", Topic: "t"}}, `entry "a": time zone "Mars/Olympus"`},
		{"never", []schedule.Entry{{Name: "a", Spec: "0 0 30 2 *", Topic: "t"}}, `entry "a": spec "0 0 30 2 *" never ticks`},
		{"catch-up of 0", []schedule.Entry{{Name: "a", Spec: "@daily", Topic: "t", Missed: schedule.CatchUp}}, `entry "a": Missed is CatchUp with CatchUp 0`},
		{"bad policy", []schedule.Entry{{Name: "a", Spec: "@daily", Topic: "t", Missed: 7}}, `entry "a": invalid Missed Missed(7)`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := schedule.New(b, c.entries, nil)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "conveyor/schedule: ") {
				t.Errorf("New: %v, want an error containing %q", err, c.want)
			}
		})
	}
}

// publisherOnly is a broker.Publisher without the TickPublisher power.
type publisherOnly struct{ broker.Publisher }

func TestNewNeedsTickPublisher(t *testing.T) {
	b := memory.New(nil)
	defer b.Close()
	_, err := schedule.New(publisherOnly{b}, nil, nil)
	if !errors.Is(err, schedule.ErrNoTickPublisher) {
		t.Errorf("New = %v, want ErrNoTickPublisher", err)
	}
}

func TestSpecNext(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	cases := []struct {
		spec, tz, after, want string
	}{
		{"0 9 * * *", "", "2026-01-15T10:00:00Z", "2026-01-16T09:00:00Z"},
		{"0 9 * * *", "America/New_York", "2026-01-15T10:00:00Z", "2026-01-15T14:00:00Z"},    // EST
		{"0 9 * * *", "America/New_York", "2026-07-15T10:00:00Z", "2026-07-15T13:00:00Z"},    // EDT
		{"30 2 * * *", "Europe/Paris", "2026-03-28T12:00:00Z", "2026-03-30T00:30:00Z"},       // 02:30 does not exist on the 29th
		{"*/15 * * * * *", "", "2026-01-15T10:00:07.5Z", "2026-01-15T10:00:15Z"},             // seconds field
		{"@hourly", "", "2026-01-15T10:00:00Z", "2026-01-15T11:00:00Z"},                      // descriptor
		{"@every 1m30s", "", "2026-01-15T10:00:00Z", "2026-01-15T10:01:30Z"},                 // aligned to the epoch
		{"@every 1m30s", "Asia/Kolkata", "2026-01-15T10:01:29.999Z", "2026-01-15T10:01:30Z"}, // not moved by the zone
		{"@every 250ms", "", "2026-01-15T10:00:00.25Z", "2026-01-15T10:00:00.5Z"},            // strictly after
		{"@every 1s", "", "2026-01-15T09:59:59.999999999Z", "2026-01-15T10:00:00Z"},          // sub-millisecond start
		{"@every 7s", "", "1969-12-31T23:59:59.5Z", "1970-01-01T00:00:00Z"},                  // before the epoch
	}
	for _, c := range cases {
		sp, err := schedule.ParseSpec(c.spec, c.tz)
		if err != nil {
			t.Fatalf("ParseSpec(%q, %q): %v", c.spec, c.tz, err)
		}
		if got := sp.Next(at(c.after)); !got.Equal(at(c.want)) {
			t.Errorf("ParseSpec(%q, %q).Next(%s) = %s, want %s", c.spec, c.tz, c.after, got.UTC().Format(time.RFC3339Nano), c.want)
		}
	}
}

// TestJob checks the job of a tick: its ID, payload and headers.
func TestJob(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 500*int(time.Millisecond), time.UTC)
	clk := newFakeClock(t0)
	v := clk.view(0, 0)
	b := memory.New(&memory.Options{Now: v.Now, FetchWait: -1})
	defer b.Close()
	headers := map[string]string{"tenant": "acme"}
	s, err := schedule.New(b, []schedule.Entry{{Name: "report", Spec: "* * * * * *", Topic: "reports", Payload: []byte(`{"k":1}`), Headers: headers}},
		&schedule.Options{Now: v.Now, After: v.After, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	headers["tenant"] = "changed" // New copied them
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	clk.quiesce(t, ctx, 1)
	clk.advance(500 * time.Millisecond)
	clk.quiesce(t, ctx, 1)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	if err := s.Run(context.Background()); !errors.Is(err, schedule.ErrRan) {
		t.Errorf("second Run = %v, want ErrRan", err)
	}
	ds, err := b.Fetch(context.Background(), []string{"reports"}, 10)
	if err != nil || len(ds) != 1 {
		t.Fatalf("Fetch = %d jobs, %v; want 1", len(ds), err)
	}
	j := ds[0].Job
	want := map[string]string{"tenant": "acme", broker.HeaderSchedule: "report", broker.HeaderScheduledAt: "2026-03-01T12:00:01.000Z"}
	if j.ID != "sched:report:1772366401000" || string(j.Payload) != `{"k":1}` || !sameHeaders(j, want) {
		t.Errorf("job ID %q payload %q headers %v; want sched:report:1772366401000, {\"k\":1}, %v", j.ID, j.Payload, j.Headers, want)
	}
}

func sameHeaders(j job.Job, want map[string]string) bool {
	if len(j.Headers) != len(want) {
		return false
	}
	for k, v := range want {
		if j.Header(k) != v {
			return false
		}
	}
	return true
}
