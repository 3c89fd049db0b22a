package schedule

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/conveyor-jobs/conveyor/broker"
)

// everyPrefix starts the spec of an interval entry.
const everyPrefix = "@every "

// parser reads cron specs: five fields (minute, hour, day of month, month,
// day of week), an optional leading seconds field, and the descriptors
// @yearly, @monthly, @weekly, @daily, @hourly.
var parser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Spec is a parsed schedule: the times at which an entry ticks. A Spec is
// immutable and safe for concurrent use.
type Spec struct {
	text  string
	every time.Duration // > 0 for an interval
	cron  cron.Schedule // otherwise
	loc   *time.Location
}

// ParseSpec parses spec, read in the time zone named tz (an IANA name such
// as "Europe/Paris"; "" means UTC).
//
// A spec is a cron expression of five fields (minute hour day-of-month
// month day-of-week) or six (a leading seconds field), or a descriptor
// (@yearly, @monthly, @weekly, @daily, @hourly), as read by
// github.com/robfig/cron/v3; or "@every <duration>" (time.ParseDuration,
// at least 1ms) for an interval. An interval's ticks are the multiples of
// it since the Unix epoch, so that every scheduler computes the same ticks
// wherever it started; the time zone does not move them.
func ParseSpec(spec, tz string) (*Spec, error) {
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, fmt.Errorf("time zone %q: %w", tz, err)
	}
	s := &Spec{text: spec, loc: loc}
	if rest, ok := strings.CutPrefix(spec, everyPrefix); ok {
		d, err := time.ParseDuration(strings.TrimSpace(rest))
		if err != nil {
			return nil, fmt.Errorf("spec %q: %w", spec, err)
		}
		if d < time.Millisecond {
			return nil, fmt.Errorf("spec %q: the interval must be at least 1ms", spec)
		}
		s.every = d.Truncate(time.Millisecond)
		return s, nil
	}
	c, err := parser.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("spec %q: %w", spec, err)
	}
	s.cron = c
	return s, nil
}

// String returns the spec as it was parsed.
func (s *Spec) String() string { return s.text }

// Next returns the first tick strictly after t, or the zero time when
// there is none (a cron date that never occurs, such as February 30th).
// Ticks have whole seconds for cron specs, whole milliseconds for
// intervals.
func (s *Spec) Next(t time.Time) time.Time {
	if s.every > 0 {
		ms, d := t.UnixMilli(), s.every.Milliseconds()
		if t.Before(time.UnixMilli(ms)) { // t.UnixMilli rounds towards zero
			ms--
		}
		return time.UnixMilli((floorDiv(ms, d) + 1) * d).UTC()
	}
	return s.cron.Next(t.In(s.loc))
}

// floorDiv is a / b rounded towards minus infinity, for b > 0.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}

// newest returns the newest at most keep ticks in (after, until], oldest
// first. It scans windows ending at until that double in length, so that
// a long downtime of a frequent entry costs about keep ticks, not every
// tick of the downtime.
func (s *Spec) newest(after, until time.Time, keep int) []time.Time {
	if keep <= 0 || !until.After(after) {
		return nil
	}
	w := time.Second
	for {
		from := until.Add(-w)
		if !from.After(after) {
			from = after
		}
		var ts []time.Time
		for t := s.Next(from); !t.IsZero() && !t.After(until); t = s.Next(t) {
			ts = append(ts, t)
			if len(ts) > keep {
				ts = ts[1:]
			}
		}
		if len(ts) >= keep || from.Equal(after) {
			return ts
		}
		w *= 2
	}
}

// NextRun returns the next tick of a registered entry after now, or after
// its last tick when that is later (a scheduler whose clock is ahead fired
// it), computed from the spec and time zone the broker recorded. It is
// zero, with no error, when the spec has no more ticks.
func NextRun(s broker.ScheduleState, now time.Time) (time.Time, error) {
	sp, err := ParseSpec(s.Spec, s.TimeZone)
	if err != nil {
		return time.Time{}, err
	}
	if s.LastTick.After(now) {
		now = s.LastTick
	}
	return sp.Next(now), nil
}
