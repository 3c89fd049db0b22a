package schedule

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"sync"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
)

// Missed says what an entry does with the ticks that passed while no
// scheduler ran (or while its scheduler was stalled). A tick is missed when
// it is after the entry's last fired tick, which the broker keeps, and
// before the scheduler started; in a running scheduler, when a newer tick is
// due too.
type Missed int

const (
	// Skip fires no missed tick: the entry resumes at its next tick. It is
	// the zero value.
	Skip Missed = iota
	// RunOnce fires the newest missed tick once, at start, and skips the
	// others.
	RunOnce
	// CatchUp fires the newest Entry.CatchUp missed ticks, oldest first.
	CatchUp
)

// String returns "skip", "run-once" or "catch-up".
func (m Missed) String() string {
	switch m {
	case Skip:
		return "skip"
	case RunOnce:
		return "run-once"
	case CatchUp:
		return "catch-up"
	}
	return "Missed(" + strconv.Itoa(int(m)) + ")"
}

// Entry is a periodic job: each tick of its spec enqueues one job on Topic.
type Entry struct {
	// Name identifies the entry. Required, unique among a scheduler's
	// entries, and the same in every process that runs the entry: the
	// broker keeps the entry's last tick under its topic and name.
	Name string
	// Spec is a cron spec or "@every <duration>"; see [ParseSpec]. Set
	// exactly one of Spec and Every.
	Spec string
	// Every is an interval, the same as Spec "@every <Every>".
	Every time.Duration
	// TimeZone is the IANA name of the zone Spec is read in; "" means UTC.
	TimeZone string
	// Topic receives the jobs. Required.
	Topic string
	// Payload and Headers are copied into every job. The scheduler adds
	// the headers broker.HeaderScheduledAt and broker.HeaderSchedule.
	Payload []byte
	Headers map[string]string
	// Missed is the policy for missed ticks; the zero value is Skip.
	Missed Missed
	// CatchUp is the most missed ticks a CatchUp entry fires; at least 1
	// for CatchUp, ignored otherwise.
	CatchUp int
}

// JobID returns the ID of the job of entry's tick at tick:
// "sched:<entry>:<tick in unix ms>". Every scheduler gives a tick the same
// ID.
func JobID(entry string, tick time.Time) string {
	return "sched:" + entry + ":" + strconv.FormatInt(tick.UnixMilli(), 10)
}

// Options configure a Scheduler. A nil *Options means all defaults.
type Options struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// After waits like time.After; nil means time.After. With Now, it lets
	// tests drive the scheduler with a fake clock.
	After func(time.Duration) <-chan time.Time
	// Logger receives a line per fired tick (Debug), per skipped missed
	// ticks (Info) and per failed publish (Warn); nil means slog.Default().
	Logger *slog.Logger
	// RetryDelay is the wait before publishing a tick again after an
	// error. Zero means 1s.
	RetryDelay time.Duration
}

// Scheduler enqueues the ticks of its entries. Any number of schedulers,
// in any number of processes, may run the same entries on one broker: the
// broker claims each tick atomically with its enqueue
// ([broker.TickPublisher]), so each tick is enqueued once, with no leader,
// whatever the skew between the schedulers' clocks.
type Scheduler struct {
	tp      broker.TickPublisher
	entries []entry
	o       Options
	log     *slog.Logger
	mu      sync.Mutex
	ran     bool
}

// entry is an Entry with its parsed spec.
type entry struct {
	Entry
	spec *Spec
}

// ErrNoTickPublisher is returned by New for a broker that cannot claim
// ticks (it does not implement [broker.TickPublisher]).
var ErrNoTickPublisher = errors.New("conveyor/schedule: the broker cannot publish ticks exactly once (no broker.TickPublisher)")

// ErrRan is returned by a second call of [Scheduler.Run].
var ErrRan = errors.New("conveyor/schedule: scheduler already ran")

// New returns a scheduler of entries on b, which must implement
// [broker.TickPublisher] (both of conveyor's brokers do). It returns an
// error naming the entry for an entry without a name or topic, with a
// duplicate name, with neither or both of Spec and Every, with a spec or
// time zone that does not parse or a spec that never ticks, or with an
// invalid Missed or CatchUp. opts may be nil.
func New(b broker.Publisher, entries []Entry, opts *Options) (*Scheduler, error) {
	tp, ok := b.(broker.TickPublisher)
	if !ok {
		return nil, fmt.Errorf("%w: %T", ErrNoTickPublisher, b)
	}
	s := &Scheduler{tp: tp}
	if opts != nil {
		s.o = *opts
	}
	if s.o.Now == nil {
		s.o.Now = time.Now
	}
	if s.o.After == nil {
		s.o.After = time.After
	}
	if s.o.RetryDelay <= 0 {
		s.o.RetryDelay = time.Second
	}
	s.log = s.o.Logger
	if s.log == nil {
		s.log = slog.Default()
	}
	seen := make(map[string]int, len(entries))
	for i, e := range entries {
		if e.Name == "" {
			return nil, fmt.Errorf("conveyor/schedule: entry %d has no name", i)
		}
		if j, dup := seen[e.Name]; dup {
			return nil, fmt.Errorf("conveyor/schedule: entries %d and %d are both named %q", j, i, e.Name)
		}
		seen[e.Name] = i
		sp, err := parseEntry(e, s.o.Now())
		if err != nil {
			return nil, fmt.Errorf("conveyor/schedule: entry %q: %w", e.Name, err)
		}
		e.Payload = append([]byte(nil), e.Payload...)
		e.Headers = maps.Clone(e.Headers)
		s.entries = append(s.entries, entry{e, sp})
	}
	return s, nil
}

// parseEntry checks e and returns its parsed spec.
func parseEntry(e Entry, now time.Time) (*Spec, error) {
	if e.Topic == "" {
		return nil, errors.New("no topic")
	}
	text := e.Spec
	switch {
	case e.Spec != "" && e.Every != 0:
		return nil, errors.New("both Spec and Every are set; set one")
	case e.Every < 0:
		return nil, fmt.Errorf("negative Every %v", e.Every)
	case e.Every > 0:
		text = everyPrefix + e.Every.String()
	case e.Spec == "":
		return nil, errors.New("no Spec nor Every")
	}
	switch {
	case e.Missed < Skip || e.Missed > CatchUp:
		return nil, fmt.Errorf("invalid Missed %v", e.Missed)
	case e.Missed == CatchUp && e.CatchUp < 1:
		return nil, fmt.Errorf("Missed is CatchUp with CatchUp %d; set CatchUp to at least 1", e.CatchUp)
	}
	sp, err := ParseSpec(text, e.TimeZone)
	if err != nil {
		return nil, err
	}
	if sp.Next(now).IsZero() {
		return nil, fmt.Errorf("spec %q never ticks", text)
	}
	return sp, nil
}

// Entries returns the scheduler's entries as the broker records them.
func (s *Scheduler) Entries() []broker.ScheduleEntry {
	out := make([]broker.ScheduleEntry, len(s.entries))
	for i := range s.entries {
		out[i] = s.entries[i].record()
	}
	return out
}

// record returns what the broker records of e.
func (e *entry) record() broker.ScheduleEntry {
	r := broker.ScheduleEntry{Name: e.Name, Topic: e.Topic, Spec: e.spec.String(), TimeZone: e.TimeZone, Missed: e.Missed.String()}
	if e.Missed == CatchUp {
		r.CatchUp = e.CatchUp
	}
	return r
}

// Run registers the entries with the broker, fires the missed ticks their
// policies ask for, then enqueues each entry's ticks as they come until ctx
// ends. It returns nil when ctx ends, the error of a registration that
// failed (nothing runs then), or [ErrRan] when called again. A failed
// publish is logged and tried again after Options.RetryDelay. Run does not
// return before every goroutine it started has ended.
func (s *Scheduler) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.ran {
		s.mu.Unlock()
		return ErrRan
	}
	s.ran = true
	s.mu.Unlock()
	last := make([]time.Time, len(s.entries))
	for i := range s.entries {
		st, err := s.tp.RegisterSchedule(ctx, s.entries[i].record())
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("conveyor/schedule: register entry %q: %w", s.entries[i].Name, err)
		}
		last[i] = st.LastTick
	}
	var wg sync.WaitGroup
	for i := range s.entries {
		wg.Go(func() { s.run(ctx, &s.entries[i], last[i]) })
	}
	wg.Wait()
	return nil
}

// run drives one entry whose durable last tick is last, until ctx ends.
func (s *Scheduler) run(ctx context.Context, e *entry, last time.Time) {
	start := s.o.Now()
	// Missed ticks: after the last fired, before this start.
	if !last.IsZero() {
		missed := e.spec.newest(last, start.Add(-time.Nanosecond), e.keep(false))
		s.skipped(e, last, start, missed)
		if !s.fire(ctx, e, missed) {
			return
		}
	}
	cursor := start.Add(-time.Nanosecond) // ticks from start on are due
	for {
		next := e.spec.Next(cursor)
		if next.IsZero() {
			s.log.Info("conveyor/schedule: entry has no more ticks", "entry", e.Name, "after", cursor)
			<-ctx.Done()
			return
		}
		if !s.wait(ctx, next) {
			return
		}
		now := s.o.Now()
		// Normally only next is due; after a stall, newer ticks may be
		// too: the newest is fired, the older ones are missed.
		due := e.spec.newest(cursor, now, e.keep(true)+1)
		if len(due) == 0 {
			continue // the clock went back
		}
		if len(due) > 1 || !due[0].Equal(next) {
			s.skipped(e, cursor, now, due[:len(due)-1])
		}
		if !s.fire(ctx, e, due) {
			return
		}
		cursor = due[len(due)-1]
	}
}

// keep returns how many missed ticks e's policy fires, when a newer tick
// is fired too (current) or not.
func (e *entry) keep(current bool) int {
	switch e.Missed {
	case RunOnce:
		if current {
			return 0
		}
		return 1
	case CatchUp:
		return e.CatchUp
	}
	return 0
}

// skipped logs that e skips the missed ticks in (from, to) other than
// fired, when there are any.
func (s *Scheduler) skipped(e *entry, from, to time.Time, fired []time.Time) {
	first := e.spec.Next(from)
	if first.IsZero() || !first.Before(to) || (len(fired) > 0 && first.Equal(fired[0])) {
		return
	}
	s.log.Info("conveyor/schedule: skipping missed ticks", "entry", e.Name, "policy", e.Missed.String(),
		"first_missed", first, "firing", len(fired))
}

// wait waits until the clock reaches t; false when ctx ended first.
func (s *Scheduler) wait(ctx context.Context, t time.Time) bool {
	for {
		d := t.Sub(s.o.Now())
		if d <= 0 {
			return ctx.Err() == nil
		}
		select {
		case <-ctx.Done():
			return false
		case <-s.o.After(d):
		}
	}
}

// fire publishes the ticks in order, each until it succeeds; false when
// ctx ended first.
func (s *Scheduler) fire(ctx context.Context, e *entry, ticks []time.Time) bool {
	for _, tick := range ticks {
		for {
			m := s.message(e, tick)
			id, fired, err := s.tp.PublishTick(ctx, e.Name, tick, m)
			if err == nil {
				s.log.Debug("conveyor/schedule: tick", "entry", e.Name, "tick", tick, "job_id", id, "fired", fired)
				break
			}
			if ctx.Err() != nil {
				return false
			}
			s.log.Warn("conveyor/schedule: could not publish a tick; trying again", "entry", e.Name, "tick", tick,
				"retry_in", s.o.RetryDelay, "err", err)
			select {
			case <-ctx.Done():
				return false
			case <-s.o.After(s.o.RetryDelay):
			}
		}
	}
	return true
}

// message returns the job of e's tick at tick.
func (s *Scheduler) message(e *entry, tick time.Time) broker.Message {
	h := make(map[string]string, len(e.Headers)+2)
	maps.Copy(h, e.Headers)
	h[broker.HeaderScheduledAt] = tick.UTC().Format(broker.ScheduledAtFormat)
	h[broker.HeaderSchedule] = e.Name
	return broker.Message{Topic: e.Topic, ID: JobID(e.Name, tick), Payload: e.Payload, Headers: h}
}
