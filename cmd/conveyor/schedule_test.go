package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/schedule"
)

// TestScheduleList registers two entries as a scheduler does, fires a tick
// of one, and checks what schedule list prints, in a table (producer text
// escaped) and as JSON.
func TestScheduleList(t *testing.T) {
	e, _ := redisEnv(t)
	inv := invocation{env: e}
	r := mustRun(t, exitOK, inv, "schedule", "list")
	if !strings.Contains(r.stdout, "no schedules") {
		t.Errorf("empty namespace: %q", r.stdout)
	}

	b := openBroker(t, e, "scheduler")
	ctx := context.Background()
	hourly := broker.ScheduleEntry{Name: "hourly", Topic: "reports", Spec: "@every 1h", Missed: "catch-up", CatchUp: 3}
	evil := broker.ScheduleEntry{Name: "evil\x1b[31m", Topic: "t", Spec: "0 9 * * *", TimeZone: "Europe/Paris", Missed: "skip"}
	for _, s := range []broker.ScheduleEntry{hourly, evil} {
		if _, err := b.RegisterSchedule(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	tick := time.Now().Truncate(time.Hour)
	id := schedule.JobID("hourly", tick)
	if _, fired, err := b.PublishTick(ctx, "hourly", tick, broker.Message{Topic: "reports", ID: id}); err != nil || !fired {
		t.Fatalf("PublishTick: %v %v", fired, err)
	}

	r = mustRun(t, exitOK, inv, "schedule", "list")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ENTRY") || strings.ContainsRune(r.stdout, 0x1b) {
		t.Fatalf("table:\n%s", r.stdout)
	}
	for _, want := range []string{`evil\x1b[31m`, "0 9 * * *", "Europe/Paris", "skip", "never"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("row %q lacks %q", lines[1], want)
		}
	}
	for _, want := range []string{"hourly", "reports", "@every 1h", "UTC", "catch-up 3", tick.UTC().Format(time.RFC3339), id, "(in "} {
		if !strings.Contains(lines[2], want) {
			t.Errorf("row %q lacks %q", lines[2], want)
		}
	}

	r = mustRun(t, exitOK, inv, "schedule", "list", "--json")
	var rows []struct {
		Name             string     `json:"name"`
		Topic            string     `json:"topic"`
		Spec             string     `json:"spec"`
		TimeZone         string     `json:"time_zone"`
		Missed           string     `json:"missed"`
		CatchUp          int        `json:"catch_up"`
		LastTick         *time.Time `json:"last_tick"`
		LastJobID        string     `json:"last_job_id"`
		LastFiredAt      *time.Time `json:"last_fired_at"`
		NextRun          *time.Time `json:"next_run"`
		NextRunInSeconds *float64   `json:"next_run_in_seconds"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	if len(rows) != 2 || rows[0].Name != evil.Name || rows[0].LastTick != nil || rows[0].NextRun == nil {
		t.Fatalf("JSON rows %+v", rows)
	}
	h := rows[1]
	if h.Topic != "reports" || h.Spec != "@every 1h" || h.Missed != "catch-up" || h.CatchUp != 3 || h.LastTick == nil || !h.LastTick.Equal(tick) ||
		h.LastJobID != id || h.LastFiredAt == nil || h.NextRun == nil || !h.NextRun.Equal(tick.Add(time.Hour)) ||
		h.NextRunInSeconds == nil || *h.NextRunInSeconds <= 0 || *h.NextRunInSeconds > 3600 {
		t.Errorf("JSON row %+v", h)
	}
}

func TestScheduleListRefusesMemory(t *testing.T) {
	r := mustRun(t, exitUsage, invocation{env: env{"QUEUE_BACKEND": "memory"}}, "schedule", "list")
	if !strings.Contains(r.stderr, "conveyor schedule list needs the Redis backend") {
		t.Errorf("stderr = %q", r.stderr)
	}
}
