package broker

import (
	"context"
	"encoding/json"
	"time"
)

// Headers of a job that a schedule enqueued.
const (
	// HeaderScheduledAt holds the time of the tick that enqueued the job,
	// in RFC 3339 with milliseconds, UTC.
	HeaderScheduledAt = "conveyor-scheduled-at"
	// HeaderSchedule holds the name of the schedule entry.
	HeaderSchedule = "conveyor-schedule"
)

// ScheduledAtFormat is the layout of [HeaderScheduledAt].
const ScheduledAtFormat = "2006-01-02T15:04:05.000Z07:00"

// ScheduleEntry describes a schedule entry as its scheduler registered it,
// so that operators can list schedules without the application's code.
type ScheduleEntry struct {
	// Name identifies the entry.
	Name string `json:"name"`
	// Topic is where the entry's jobs are published.
	Topic string `json:"topic"`
	// Spec is the cron spec, or "@every <duration>" for an interval.
	Spec string `json:"spec"`
	// TimeZone is the IANA name of the zone the spec is read in ("" or
	// "UTC" for UTC).
	TimeZone string `json:"time_zone"`
	// Missed is the policy for ticks missed while no scheduler ran:
	// "skip", "run-once" or "catch-up".
	Missed string `json:"missed"`
	// CatchUp is the most missed ticks a "catch-up" entry fires.
	CatchUp int `json:"catch_up,omitempty"`
}

// ScheduleState is a registered entry with the durable state of its ticks.
// Its JSON form gives times in RFC 3339 and omits those that are zero.
type ScheduleState struct {
	ScheduleEntry
	// LastTick is the time of the newest tick fired; zero when none was.
	LastTick time.Time
	// LastJobID is the ID of the job that tick enqueued.
	LastJobID string
	// LastFiredAt is when the broker enqueued that job (its clock).
	LastFiredAt time.Time
	// RegisteredAt is when a scheduler last registered the entry.
	RegisteredAt time.Time
}

// scheduleStateJSON is the JSON form of ScheduleState.
type scheduleStateJSON struct {
	ScheduleEntry
	LastTick     *time.Time `json:"last_tick,omitempty"`
	LastJobID    string     `json:"last_job_id,omitempty"`
	LastFiredAt  *time.Time `json:"last_fired_at,omitempty"`
	RegisteredAt *time.Time `json:"registered_at,omitempty"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func timeOf(p *time.Time) time.Time {
	if p == nil {
		return time.Time{}
	}
	return *p
}

// MarshalJSON encodes s, leaving out zero times.
func (s ScheduleState) MarshalJSON() ([]byte, error) {
	return json.Marshal(scheduleStateJSON{s.ScheduleEntry, timePtr(s.LastTick), s.LastJobID, timePtr(s.LastFiredAt), timePtr(s.RegisteredAt)})
}

// UnmarshalJSON decodes what MarshalJSON encodes.
func (s *ScheduleState) UnmarshalJSON(data []byte) error {
	var v scheduleStateJSON
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	*s = ScheduleState{v.ScheduleEntry, timeOf(v.LastTick), v.LastJobID, timeOf(v.LastFiredAt), timeOf(v.RegisteredAt)}
	return nil
}

// TickPublisher is implemented by brokers that enqueue each tick of a
// schedule exactly once, however many schedulers run: the claim on the
// tick and the enqueue are one atomic step in the store. Package schedule
// requires it.
type TickPublisher interface {
	// RegisterSchedule records e (replacing what was recorded under its
	// topic and name) and returns its state, with the durable last tick.
	RegisterSchedule(ctx context.Context, e ScheduleEntry) (ScheduleState, error)
	// PublishTick enqueues m, due now, as the tick of entry at tick,
	// unless a tick of entry at or after tick was already enqueued: the
	// entry's last tick, kept per topic (m.Topic) and entry name, is
	// checked and advanced in the same atomic step as the enqueue. It
	// returns m's ID and fired true when it enqueued m; the ID of the job
	// of the entry's last tick and fired false when it did not. m.ID is
	// required, and m's ProcessAt and Delay are ignored.
	PublishTick(ctx context.Context, entry string, tick time.Time, m Message) (id string, fired bool, err error)
	// Schedules lists the registered entries with their state, sorted by
	// name, then topic.
	Schedules(ctx context.Context) ([]ScheduleState, error)
}
