package bench

import (
	"context"
	"errors"
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
// one topic with plain fetches (priorities-1), then N jobs spread evenly
// over three topics weighted 3:2:1 (priorities-3, compared to
// priorities-1). The shares of the first half of the jobs processed in
// priorities-3, which every topic still had a backlog for, are in the
// row's description.
func runPriorities(ctx context.Context, e *env) error {
	if err := e.prioritiesCase(ctx, RowPriorities1, nil); err != nil {
		return fmt.Errorf("bench: %s: %w", RowPriorities1, err)
	}
	if err := e.prioritiesCase(ctx, RowPriorities3, PrioritiesWeights); err != nil {
		return fmt.Errorf("bench: %s: %w", RowPriorities3, err)
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

func (e *env) prioritiesCase(ctx context.Context, row string, weights []int) error {
	rt := &roundTrips{}
	b, err := e.openRedis(ScenarioPriorities, rt)
	if err != nil {
		return err
	}
	ns := b.Options().Namespace
	defer func() {
		_ = b.Close()
		_ = e.cleanup(ns)
	}()
	k := max(len(weights), 1)
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
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	runErr := make(chan error, 1)
	m := startMeter(e, rt)
	go func() { runErr <- srv.Run(runCtx) }()
	doneAt, waitErr := w.wait(ctx, stallTimeout)
	var meas measurement
	if waitErr == nil {
		meas = m.endAt(doneAt)
	} else {
		m.end()
	}
	stop()
	if err := errors.Join(waitErr, <-runErr); err != nil {
		return err
	}
	calls, missing := tr.count()
	if missing > 0 {
		return fmt.Errorf("%d of %d jobs never reached the handler", missing, n)
	}
	for _, topic := range topics {
		if l, p, err := e.topicState(ctx, b, topic); err != nil || l != 0 || p != 0 {
			return fmt.Errorf("after processing, topic %s length %d, pending %d (%v)", topic, l, p, err)
		}
	}
	res := result(n, meas)
	res.Processed = calls
	what := fmt.Sprintf("N jobs on 1 topic, server on Redis (concurrency %d), no-op handler, plain fetches", e.cfg.Concurrency)
	if weights != nil {
		shares := ""
		for i, topic := range topics {
			if i > 0 {
				shares += "/"
			}
			shares += fmt.Sprintf("%.0f", 100*float64(firstHalf[topic])/float64(max(n/2, 1)))
		}
		what = fmt.Sprintf("N jobs over 3 topics weighted %d:%d:%d, as priorities-1; first half processed %s %%",
			weights[0], weights[1], weights[2], shares)
	}
	e.report.add(ScenarioPriorities, row, what, res)
	return nil
}
