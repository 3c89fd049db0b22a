package broker_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/job"
)

func TestPendingEntryJSON(t *testing.T) {
	p := broker.PendingEntry{ID: "1-0", Consumer: "w1", Idle: 1500 * time.Millisecond, Deliveries: 2}
	data, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"id":"1-0","consumer":"w1","idle_seconds":1.5,"deliveries":2}`; string(data) != want {
		t.Errorf("JSON = %s, want %s", data, want)
	}
	var back broker.PendingEntry
	if err := json.Unmarshal(data, &back); err != nil || back != p {
		t.Errorf("round trip = %+v, %v; want %+v", back, err, p)
	}
}

func TestDelayedJobJSON(t *testing.T) {
	due := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	plain, err := json.Marshal(broker.DelayedJob{Job: job.Job{ID: "j"}, Due: due})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(plain, &m); err != nil {
		t.Fatal(err)
	}
	if _, ok := m["snooze"]; ok || m["due"] != "2026-01-02T03:04:05Z" || m["job"] == nil {
		t.Errorf("JSON = %s, want job, due and no snooze", plain)
	}
	snoozed, err := json.Marshal(broker.DelayedJob{Due: due, Snooze: &broker.Snooze{Cause: "conveyor: circuit open", At: due}})
	if err != nil {
		t.Fatal(err)
	}
	m = nil
	if err := json.Unmarshal(snoozed, &m); err != nil {
		t.Fatal(err)
	}
	s, _ := m["snooze"].(map[string]any)
	if s["cause"] != "conveyor: circuit open" || s["at"] != "2026-01-02T03:04:05Z" {
		t.Errorf("JSON = %s, want snooze with cause and at", snoozed)
	}
}
