package memory

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
)

var _ broker.TickPublisher = (*Broker)(nil)

// schedules is the schedule state that a root and its views share. mu is
// held across the claim and the publish of a tick, so the two are one step
// for every scheduler of the process.
type schedules struct {
	mu sync.Mutex
	m  map[scheduleKey]*broker.ScheduleState
}

// scheduleKey identifies an entry's state: per topic and name, as in Redis.
type scheduleKey struct{ topic, name string }

// state returns the entry's state, creating it. s.mu must be held.
func (s *schedules) state(topic, name string) *broker.ScheduleState {
	if s.m == nil {
		s.m = make(map[scheduleKey]*broker.ScheduleState)
	}
	k := scheduleKey{topic, name}
	st := s.m[k]
	if st == nil {
		st = &broker.ScheduleState{ScheduleEntry: broker.ScheduleEntry{Name: name, Topic: topic}}
		s.m[k] = st
	}
	return st
}

// RegisterSchedule records e and returns its state.
func (b *Broker) RegisterSchedule(ctx context.Context, e broker.ScheduleEntry) (broker.ScheduleState, error) {
	if err := b.scheduleCheck(ctx, e.Topic, e.Name); err != nil {
		return broker.ScheduleState{}, err
	}
	s := &b.st.sched
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.state(e.Topic, e.Name)
	st.ScheduleEntry = e
	st.RegisteredAt = b.st.now()
	return *st, nil
}

// PublishTick publishes m as entry's tick at tick unless a tick at or
// after it was published; see [broker.TickPublisher].
func (b *Broker) PublishTick(ctx context.Context, entry string, tick time.Time, m broker.Message) (string, bool, error) {
	if err := b.scheduleCheck(ctx, m.Topic, entry); err != nil {
		return "", false, err
	}
	if m.ID == "" {
		return "", false, fmt.Errorf("%w: the tick of schedule %q has no job ID", broker.ErrInvalidMessage, entry)
	}
	s := &b.st.sched
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.state(m.Topic, entry)
	if !st.LastTick.IsZero() && !tick.After(st.LastTick) {
		return st.LastJobID, false, nil
	}
	m.ProcessAt, m.Delay = time.Time{}, 0
	id, err := b.Publish(ctx, m)
	if err != nil {
		return "", false, err
	}
	st.LastTick, st.LastJobID, st.LastFiredAt = tick, id, b.st.now()
	return id, true, nil
}

// Schedules lists the registered entries, by name, then topic; an entry
// whose ticks were published but that was never registered is not listed.
func (b *Broker) Schedules(ctx context.Context) ([]broker.ScheduleState, error) {
	if err := b.open(ctx); err != nil {
		return nil, err
	}
	s := &b.st.sched
	s.mu.Lock()
	out := make([]broker.ScheduleState, 0, len(s.m))
	for _, st := range s.m {
		if !st.RegisteredAt.IsZero() {
			out = append(out, *st)
		}
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b broker.ScheduleState) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Topic, b.Topic))
	})
	return out, nil
}

// open returns ctx's error, or ErrClosed for a closed broker.
func (b *Broker) open(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.st.mu.Lock()
	defer b.st.mu.Unlock()
	if b.closedLocked() {
		return broker.ErrClosed
	}
	return nil
}

// scheduleCheck returns the error of a schedule call on a closed broker,
// with an ended ctx, or for an empty topic or entry name.
func (b *Broker) scheduleCheck(ctx context.Context, topic, name string) error {
	if err := b.open(ctx); err != nil {
		return err
	}
	if topic == "" {
		return fmt.Errorf("%w: schedule %q has an empty topic", broker.ErrInvalidMessage, name)
	}
	if name == "" {
		return fmt.Errorf("%w: schedule with an empty name", broker.ErrInvalidMessage)
	}
	return nil
}
