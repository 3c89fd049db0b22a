package brokertest

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
)

// tickMessage is the job of entry's tick at tick, as package schedule
// builds it.
func tickMessage(topic, entry string, tick time.Time) broker.Message {
	return broker.Message{
		Topic:   topic,
		ID:      fmt.Sprintf("sched:%s:%d", entry, tick.UnixMilli()),
		Payload: []byte(`{"report":"daily"}`),
		Headers: map[string]string{broker.HeaderSchedule: entry, broker.HeaderScheduledAt: tick.UTC().Format(broker.ScheduledAtFormat)},
	}
}

// testSchedule pins broker.TickPublisher: a tick is enqueued once, ticks at
// or before the last are refused, the state is shared by every consumer
// and survives re-registration, and racing schedulers fire each tick once.
func testSchedule(e *env) {
	t := e.t
	b := e.open("s1")
	tp := power[broker.TickPublisher](t, b, "TickPublisher")
	other := e.open("s2").(broker.TickPublisher)

	entry := broker.ScheduleEntry{Name: "daily-report", Topic: "reports", Spec: "0 9 * * *", TimeZone: "Europe/Paris", Missed: "catch-up", CatchUp: 3}
	st, err := tp.RegisterSchedule(e.ctx, entry)
	if err != nil {
		t.Fatalf("RegisterSchedule: %v", err)
	}
	if st.ScheduleEntry != entry || !st.LastTick.IsZero() || st.LastJobID != "" || st.RegisteredAt.IsZero() {
		t.Fatalf("RegisterSchedule of a new entry = %+v, want the entry, no last tick, a registration time", st)
	}

	t0 := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	m := tickMessage("reports", entry.Name, t0)
	id, fired, err := tp.PublishTick(e.ctx, entry.Name, t0, m)
	if err != nil || !fired || id != m.ID {
		t.Fatalf("first PublishTick = %q, %v, %v; want %q, true, nil", id, fired, err, m.ID)
	}
	for _, c := range []struct {
		name string
		p    broker.TickPublisher
		tick time.Time
	}{
		{"the same tick again", tp, t0},
		{"the same tick from another consumer", other, t0},
		{"an earlier tick", other, t0.Add(-time.Hour)},
	} {
		id, fired, err := c.p.PublishTick(e.ctx, entry.Name, c.tick, tickMessage("reports", entry.Name, c.tick))
		if err != nil || fired || id != m.ID {
			t.Errorf("PublishTick of %s = %q, %v, %v; want %q (the last tick's job), false, nil", c.name, id, fired, err, m.ID)
		}
	}
	d := e.fetchOne(b, "reports")
	if d.Job.ID != m.ID || string(d.Job.Payload) != string(m.Payload) ||
		d.Job.Header(broker.HeaderSchedule) != entry.Name || d.Job.Header(broker.HeaderScheduledAt) != "2026-03-01T08:00:00.000Z" {
		t.Errorf("tick job = ID %q payload %q headers %v", d.Job.ID, d.Job.Payload, d.Job.Headers)
	}
	e.ack(b, d)
	e.expectNone(b, []string{"reports"}, 0, "refused ticks enqueued a job")

	t1 := t0.Add(24 * time.Hour)
	m1 := tickMessage("reports", entry.Name, t1)
	if id, fired, err := other.PublishTick(e.ctx, entry.Name, t1, m1); err != nil || !fired || id != m1.ID {
		t.Fatalf("PublishTick of the next tick = %q, %v, %v; want %q, true, nil", id, fired, err, m1.ID)
	}
	if id, fired, err := tp.PublishTick(e.ctx, "other-entry", t0, tickMessage("reports", "other-entry", t0)); err != nil || !fired || id == m.ID {
		t.Errorf("PublishTick of another entry's tick = %q, %v, %v; want fired, its own ID", id, fired, err)
	}
	e.ack(b, e.fetchN(b, []string{"reports"}, 2, 10)...)

	// Registering again (another scheduler starting) keeps the last tick.
	st, err = other.RegisterSchedule(e.ctx, entry)
	if err != nil {
		t.Fatalf("RegisterSchedule again: %v", err)
	}
	if !st.LastTick.Equal(t1) || st.LastJobID != m1.ID || st.LastFiredAt.IsZero() {
		t.Errorf("RegisterSchedule again = last tick %v, job %q, fired at %v; want %v, %q, a time", st.LastTick, st.LastJobID, st.LastFiredAt, t1, m1.ID)
	}
	list, err := tp.Schedules(e.ctx)
	if err != nil {
		t.Fatalf("Schedules: %v", err)
	}
	// other-entry was never registered: only registered entries are listed.
	if len(list) != 1 || list[0].ScheduleEntry != entry || !list[0].LastTick.Equal(t1) || list[0].LastJobID != m1.ID {
		t.Errorf("Schedules = %+v, want the entry with last tick %v and job %q", list, t1, m1.ID)
	}

	for _, c := range []struct {
		name  string
		entry string
		m     broker.Message
	}{
		{"empty topic", "x", broker.Message{ID: "a"}},
		{"empty entry", "", broker.Message{Topic: "reports", ID: "a"}},
		{"no job ID", "x", broker.Message{Topic: "reports"}},
	} {
		if _, _, err := tp.PublishTick(e.ctx, c.entry, t0, c.m); err == nil {
			t.Errorf("PublishTick with %s: no error", c.name)
		}
	}

	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	t2 := t1.Add(24 * time.Hour)
	if _, _, err := tp.PublishTick(e.ctx, entry.Name, t2, tickMessage("reports", entry.Name, t2)); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("PublishTick on a closed broker: %v, want ErrClosed", err)
	}
	if _, err := tp.RegisterSchedule(e.ctx, entry); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("RegisterSchedule on a closed broker: %v, want ErrClosed", err)
	}
	if _, err := tp.Schedules(e.ctx); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Schedules on a closed broker: %v, want ErrClosed", err)
	}
}

// testScheduleRace runs schedulers on several consumers that all try every
// tick at once: each tick is enqueued exactly once.
func testScheduleRace(e *env) {
	t := e.t
	const schedulers, ticks = 6, 40
	ps := make([]broker.TickPublisher, schedulers)
	for i := range ps {
		ps[i] = power[broker.TickPublisher](t, e.open(fmt.Sprintf("s%d", i)), "TickPublisher")
	}
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var fired atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, schedulers)
	for _, p := range ps {
		wg.Go(func() {
			for i := range ticks {
				tick := t0.Add(time.Duration(i) * time.Second)
				_, ok, err := p.PublishTick(e.ctx, "every-second", tick, tickMessage("race", "every-second", tick))
				if err != nil {
					errs <- err
					return
				}
				if ok {
					fired.Add(1)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("PublishTick: %v", err)
	}
	if fired.Load() != ticks {
		t.Errorf("%d schedulers fired %d ticks in all, want each of the %d ticks once", schedulers, fired.Load(), ticks)
	}
	b := e.open("reader")
	ds := e.fetchN(b, []string{"race"}, ticks, 100)
	seen := map[string]bool{}
	for _, d := range ds {
		if seen[d.Job.ID] {
			t.Errorf("job %s enqueued twice", d.Job.ID)
		}
		seen[d.Job.ID] = true
	}
	e.ack(b, ds...)
	e.expectNone(b, []string{"race"}, 0, "more jobs than ticks")
}
