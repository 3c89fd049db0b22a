package server

import (
	"context"
	"errors"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
)

// heartbeat renews the leases of the deliveries the workers hold, in one
// Extend call every HeartbeatInterval, until stop is closed.
func (s *Server) heartbeat(ctx context.Context, stop <-chan struct{}) {
	if s.opts.HeartbeatInterval <= 0 {
		<-stop
		return
	}
	failing := false
	s.everyHeld(stop, s.opts.HeartbeatInterval, func(held []*broker.Delivery, holders []*worker) {
		at := time.Now()
		err := s.b.Extend(ctx, held...)
		if err == nil || errors.Is(err, broker.ErrNotFound) {
			// A lease another consumer took is not renewed, but the
			// broker refuses to settle it: its lease end does not matter.
			for i, w := range holders {
				if w.cur.Load() == held[i] {
					w.renewed.Store(at.UnixNano())
				}
			}
		}
		switch {
		case errors.Is(err, broker.ErrNotFound):
			// Some of them were settled (or lost) between the snapshot and
			// the call; the broker renewed the others.
			s.log.Debug("conveyor: some leases were not renewed", "jobs", len(held), "error", err)
		case err != nil:
			s.stats.extendErrors.Add(1)
			if !failing {
				s.log.Error("conveyor: renewing leases failed: long jobs may be redelivered to another worker",
					"jobs", len(held), "error", err)
			}
			failing = true
		case failing:
			s.log.Info("conveyor: renewing leases recovered")
			failing = false
		default:
			s.stats.extended.Add(int64(len(held)))
		}
	})
}

// everyHeld calls f every interval, until stop is closed, with the
// deliveries the workers hold and the workers holding them (held[i] is
// holders[i]'s), on the ticks when they hold any. The slices are reused:
// f must not keep them.
func (s *Server) everyHeld(stop <-chan struct{}, interval time.Duration, f func(held []*broker.Delivery, holders []*worker)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	held := make([]*broker.Delivery, 0, len(s.workers))
	holders := make([]*worker, 0, len(s.workers))
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		held, holders = held[:0], holders[:0]
		for _, w := range s.workers {
			if d := w.cur.Load(); d != nil {
				held = append(held, d)
				holders = append(holders, w)
			}
		}
		if len(held) == 0 {
			continue
		}
		f(held, holders)
		clear(held)
		clear(holders)
	}
}
