package dashboard

import (
	"context"
	"strconv"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/internal/redact"
	"github.com/conveyor-jobs/conveyor/schedule"
)

// schedulesPanel is the overview's list of schedule entries, shown when
// the broker implements [broker.TickPublisher].
type schedulesPanel struct {
	Rows []scheduleRow
	Now  time.Time
	// Err is why the entries could not be read.
	Err string
}

// scheduleRow is one registered entry and its next run.
type scheduleRow struct {
	broker.ScheduleState
	// NextRun is zero when the entry has no more ticks or Err is set.
	NextRun time.Time
	// Err is why NextRun could not be computed from the recorded spec.
	Err string
}

// Policy returns the missed-tick policy as shown: "catch-up 3".
func (r scheduleRow) Policy() string {
	if r.CatchUp > 0 {
		return r.Missed + " " + strconv.Itoa(r.CatchUp) + " " + plural(r.CatchUp, "tick", "ticks")
	}
	return r.Missed
}

// schedules reads the schedule entries; nil when the broker keeps none.
func (d *Dashboard) schedules(ctx context.Context) *schedulesPanel {
	tp, ok := d.insp.(broker.TickPublisher)
	if !ok {
		return nil
	}
	p := &schedulesPanel{Now: d.o.Sampling.Now()}
	states, err := tp.Schedules(ctx)
	if err != nil {
		p.Err = redact.In(err.Error(), d.o.Display.RedisURL)
		return p
	}
	for _, s := range states {
		r := scheduleRow{ScheduleState: s}
		r.NextRun, err = schedule.NextRun(s, p.Now)
		if err != nil {
			r.Err = err.Error()
		}
		p.Rows = append(p.Rows, r)
	}
	return p
}
