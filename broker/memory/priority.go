package memory

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/internal/share"
)

var (
	_ broker.PriorityFetcher = (*Broker)(nil)
	_ broker.Pauser          = (*Broker)(nil)
)

// FetchWeighted is Fetch with priorities (see [broker.PriorityFetcher]).
// Weighted, each job goes to the topic with ready jobs that is furthest
// behind its share (stride scheduling, shared by every view of the root);
// strict, topics are emptied in order of weight.
func (b *Broker) FetchWeighted(ctx context.Context, topics []broker.TopicWeight, n int, strict bool) ([]*broker.Delivery, error) {
	names := make([]string, len(topics))
	for i, t := range topics {
		names[i] = t.Topic
	}
	if strict {
		order := slices.Clone(topics)
		slices.SortStableFunc(order, func(a, b broker.TopicWeight) int { return cmp.Compare(max(b.Weight, 1), max(a.Weight, 1)) })
		for i, t := range order {
			names[i] = t.Topic
		}
		return b.fetch(ctx, names, n, func(now time.Time) []*broker.Delivery {
			return b.st.takeStrict(b, names, n, now)
		})
	}
	strides := make([]int64, len(topics))
	for i, t := range topics {
		strides[i] = share.Stride(t.Weight)
	}
	return b.fetch(ctx, names, n, func(now time.Time) []*broker.Delivery {
		return b.st.takeWeighted(b, names, strides, n, now)
	})
}

// takeStrict leases up to max ready jobs, taking from each topic in the
// order of names only when every topic before it has none left.
func (st *state) takeStrict(b *Broker, names []string, max int, now time.Time) []*broker.Delivery {
	var out []*broker.Delivery
	until := st.tick(now) + int64(st.lease)
	for _, name := range names {
		t := st.topics[name]
		if !t.has() {
			continue
		}
		for len(out) < max && t.ready > 0 {
			out = append(out, st.give(b, t, new(broker.Delivery), new(lease), until))
		}
		st.served(b, t)
		if len(out) == max {
			break
		}
	}
	if len(out) > 0 {
		b.c.lastSeen = now
		st.name(out)
	}
	return out
}

// takeWeighted leases up to max ready jobs, one at a time to the topic of
// names with ready jobs whose pass is lowest (see internal/share).
func (st *state) takeWeighted(b *Broker, names []string, strides []int64, max int, now time.Time) []*broker.Delivery {
	ts := make([]*topic, len(names))
	pass := make([]int64, len(names))
	live := make([]bool, len(names))
	ready := false
	for i, name := range names {
		if t := st.topics[name]; t != nil {
			ts[i], pass[i], live[i] = t, t.pass, t.has()
			ready = ready || live[i]
		}
	}
	if !ready {
		return nil
	}
	gave := make([]bool, len(names))
	var out []*broker.Delivery
	until := st.tick(now) + int64(st.lease)
	for len(out) < max {
		i := share.Pick(pass, live)
		if i < 0 {
			break
		}
		out = append(out, st.give(b, ts[i], new(broker.Delivery), new(lease), until))
		pass[i] += strides[i]
		gave[i] = true
		if ts[i].ready == 0 {
			live[i] = false
		}
	}
	share.Idle(pass, live)
	share.Normalize(pass)
	for i, t := range ts {
		if t != nil {
			t.pass = pass[i]
		}
		if gave[i] {
			st.served(b, t)
		}
	}
	b.c.lastSeen = now
	st.name(out)
	return out
}

// Pause stops every view of the root from fetching topic until Resume. Its
// ready jobs stay queued, delayed jobs become ready when due but are not
// fetched, and leases that expire go back to the queue (or to the
// dead-letter topic, at the poison limit). The pause lasts as long as the
// root.
func (b *Broker) Pause(ctx context.Context, topic string) error {
	return b.setPaused(ctx, topic, true)
}

// Resume lets topic be fetched again and wakes the Fetches waiting for it.
func (b *Broker) Resume(ctx context.Context, topic string) error {
	return b.setPaused(ctx, topic, false)
}

// Paused reports whether topic is paused.
func (b *Broker) Paused(ctx context.Context, topic string) (bool, error) {
	if err := b.lock(ctx); err != nil {
		return false, err
	}
	defer b.st.mu.Unlock()
	t := b.st.topics[topic]
	return t != nil && t.paused, nil
}

func (b *Broker) setPaused(ctx context.Context, topic string, paused bool) error {
	if topic == "" {
		return fmt.Errorf("%w: empty topic", broker.ErrInvalidMessage)
	}
	if err := b.lock(ctx); err != nil {
		return err
	}
	st := b.st
	defer st.mu.Unlock()
	t := st.topic(topic)
	t.paused = paused
	if !paused && t.ready > 0 {
		st.touch(t)
		st.flush(st.now())
	}
	return nil
}
