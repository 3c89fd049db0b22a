package bench

import (
	"context"
	"fmt"
	"sync"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/server"
)

// PrioritiesWeights are the weights of the priorities scenario's three
// topics.
var PrioritiesWeights = []int{3, 2, 1}

// runPriorities measures what fetching by weight costs: a server on Redis
// (--concurrency workers, no-op handler) draining N pre-enqueued jobs on
// one topic with plain fetches (priorities-1), N jobs spread evenly over
// three topics fetched in turn (priorities-3-turn: the cost of more
// topics), and over three topics weighted 3:2:1 (priorities-3: the cost of
// the weights on top), both compared to priorities-1. The shares of the
// first half of the jobs processed, which every topic still had a backlog
// for, are in the three-topic rows' descriptions.
func runPriorities(ctx context.Context, e *env) error {
	for _, c := range []struct {
		row     string
		topics  int
		weights []int
	}{
		{RowPriorities1, 1, nil},
		{RowPriorities3Turn, 3, nil},
		{RowPriorities3, 3, PrioritiesWeights},
	} {
		if err := e.prioritiesCase(ctx, c.row, c.topics, c.weights); err != nil {
			return fmt.Errorf("bench: %s: %w", c.row, err)
		}
	}
	return nil
}

// prioritiesWatch is an ackWatch that keeps the wrapped broker's
// broker.PriorityFetcher power, for the server to find.
type prioritiesWatch struct {
	*ackWatch
	pf broker.PriorityFetcher
}

// FetchWeighted is the wrapped broker's.
func (w prioritiesWatch) FetchWeighted(ctx context.Context, topics []broker.TopicWeight, max int, strict bool) ([]*broker.Delivery, error) {
	return w.pf.FetchWeighted(ctx, topics, max, strict)
}

func (e *env) prioritiesCase(ctx context.Context, row string, k int, weights []int) error {
	rt := &roundTrips{}
	b, release, err := e.openRedis(ScenarioPriorities, rt)
	if err != nil {
		return err
	}
	defer release()
	topics := make([]string, k)
	prio := map[string]int{}
	for i := range topics {
		topics[i] = fmt.Sprintf("%s-%d", benchTopic, i)
		if weights != nil {
			prio[topics[i]] = weights[i]
		}
	}
	counts := even(e.cfg.N, k)
	n := 0
	for _, c := range counts {
		n += c
	}
	if err := enqueueTopics(ctx, b, topics, counts, e.cfg.PayloadSize); err != nil {
		return err
	}
	tr := newTracker(n)
	var mu sync.Mutex
	firstHalf := make(map[string]int, k)
	seen := 0
	mux := job.NewMux()
	for _, topic := range topics {
		mux.HandleFunc(topic, func(_ context.Context, j *job.Job) error {
			tr.mark(j.Payload)
			mu.Lock()
			if seen < n/2 {
				firstHalf[j.Topic]++
			}
			seen++
			mu.Unlock()
			return nil
		})
	}
	w := newAckWatch(b, n)
	opts := &server.Options{Concurrency: e.cfg.Concurrency, Logger: e.quiet}
	if weights != nil {
		opts.Priorities = prio
	}
	srv, err := server.New(prioritiesWatch{w, b}, mux, opts)
	if err != nil {
		return err
	}
	res, _, err := e.drain(ctx, srv, w, rt, tr, topics...)
	if err != nil {
		return err
	}
	shares := ""
	for i, topic := range topics {
		if i > 0 {
			shares += "/"
		}
		shares += fmt.Sprintf("%.0f", 100*float64(firstHalf[topic])/float64(max(n/2, 1)))
	}
	var what string
	switch {
	case k == 1:
		what = fmt.Sprintf("N jobs on 1 topic, server on Redis (concurrency %d), no-op handler", e.cfg.Concurrency)
	case weights == nil:
		what = fmt.Sprintf("N jobs over %d topics in turn, as priorities-1; first half processed %s %%", k, shares)
	default:
		what = fmt.Sprintf("N jobs over %d topics weighted %v, as priorities-1; first half processed %s %%", k, weights, shares)
	}
	e.report.add(ScenarioPriorities, row, what, res)
	return nil
}
