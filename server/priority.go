package server

import (
	"context"
	"fmt"

	"github.com/conveyor-jobs/conveyor/broker"
)

// priorities validates o.Priorities against topics and returns the
// weighted topics to fetch, or nil when the server fetches its topics in
// turn (no Priorities, no StrictPriority).
func (o *Options) priorities(topics []string) ([]broker.TopicWeight, error) {
	if len(o.Priorities) == 0 && !o.StrictPriority {
		return nil, nil
	}
	fetched := make(map[string]bool, len(topics))
	for _, t := range topics {
		fetched[t] = true
	}
	for t, w := range o.Priorities {
		if !fetched[t] {
			return nil, fmt.Errorf("%w: Priorities names topic %q, which the server does not fetch", ErrInvalidOptions, t)
		}
		if w < 0 {
			return nil, fmt.Errorf("%w: Priorities[%q] is negative", ErrInvalidOptions, t)
		}
	}
	out := make([]broker.TopicWeight, len(topics))
	for i, t := range topics {
		out[i] = broker.TopicWeight{Topic: t, Weight: max(o.Priorities[t], 1)}
	}
	return out, nil
}

// fetch fetches up to n jobs: by priority when the server has priorities
// and the broker can (broker.PriorityFetcher), else in turn.
func (s *Server) fetch(ctx context.Context, n int) ([]*broker.Delivery, error) {
	if s.weights != nil && s.prio != nil {
		return s.prio.FetchWeighted(ctx, s.weights, n, s.opts.StrictPriority)
	}
	return s.b.Fetch(ctx, s.topics, n)
}

// logPriorities says at start how the server shares its fetches.
func (s *Server) logPriorities() {
	switch {
	case s.weights == nil:
	case s.prio == nil:
		s.log.Warn("conveyor: the broker cannot fetch by priority (it is no broker.PriorityFetcher): Priorities and StrictPriority are ignored and topics are served in turn")
	case s.opts.StrictPriority:
		s.log.Info("conveyor: fetching topics in strict priority order", "priorities", s.weights)
	default:
		s.log.Info("conveyor: fetching topics by weight", "priorities", s.weights)
	}
}
