package bench

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/server"
)

// The topics scenario's server: few workers and a handler that takes a
// while, so that it measures how well a Fetch keeps the workers busy across
// topics rather than how fast the broker moves jobs.
const (
	TopicsConcurrency = 10
	TopicsHandlerTime = 2 * time.Millisecond
)

// topicsCase is one row of the topics scenario: how N jobs are spread.
type topicsCase struct {
	row  string
	what string
	// spread returns the number of jobs of each topic for n jobs.
	spread func(n int) []int
}

var topicsCases = []topicsCase{
	{RowTopics1, "N jobs on 1 topic", func(n int) []int { return even(n, 1) }},
	{RowTopics10, "N jobs over 10 topics", func(n int) []int { return even(n, 10) }},
	{RowTopics200, "N jobs over 200 topics", func(n int) []int { return even(n, 200) }},
	{RowTopicsHot, "N/2 jobs on 1 topic, N/2 over 199 more", func(n int) []int {
		return append([]int{max(n/2, 1)}, even(n-n/2, 199)...)
	}},
}

// even spreads n jobs over k topics, at least one each.
func even(n, k int) []int {
	out := make([]int, k)
	for i := range out {
		out[i] = max(n/k, 1)
		if i < n%k && n > k {
			out[i]++
		}
	}
	return out
}

// runTopics measures a server on Redis (TopicsConcurrency workers, a
// handler that sleeps TopicsHandlerTime) draining N pre-enqueued jobs
// spread over 1, 10 and 200 topics, and one topic holding half of them
// beside 199 small ones. A row's jobs/s is the whole drain's; its
// percentiles are of the topics' completion times (from the server's start
// to the acknowledgement of a topic's last job), so max is the slowest
// topic's.
func runTopics(ctx context.Context, e *env) error {
	for _, c := range topicsCases {
		if err := e.topicsCase(ctx, c); err != nil {
			return fmt.Errorf("bench: %s: %w", c.row, err)
		}
	}
	return nil
}

func (e *env) topicsCase(ctx context.Context, c topicsCase) error {
	rt := &roundTrips{}
	b, release, err := e.openRedis(ScenarioTopics, rt)
	if err != nil {
		return err
	}
	defer release()
	counts := c.spread(e.cfg.N)
	topics := make([]string, len(counts))
	index := make(map[string]int, len(counts))
	n := 0
	for i, k := range counts {
		topics[i] = fmt.Sprintf("%s-%03d", benchTopic, i)
		index[topics[i]] = i
		n += k
	}
	if err := enqueueTopics(ctx, b, topics, counts, e.cfg.PayloadSize); err != nil {
		return err
	}

	tr := newTracker(n)
	handler := job.HandlerFunc(func(ctx context.Context, j *job.Job) error {
		tr.mark(j.Payload)
		t := time.NewTimer(TopicsHandlerTime)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		return nil
	})
	mux := job.NewMux()
	for _, topic := range topics {
		mux.Handle(topic, handler)
	}
	var mu sync.Mutex
	left := slices.Clone(counts)
	finished := make([]time.Time, len(counts))
	w := newAckWatch(b, n)
	w.onAck = func(ds []*broker.Delivery, at time.Time) {
		mu.Lock()
		defer mu.Unlock()
		for _, d := range ds {
			if i, ok := index[d.Job.Topic]; ok {
				if left[i]--; left[i] == 0 {
					finished[i] = at
				}
			}
		}
	}
	srv, err := server.New(w, mux, &server.Options{Concurrency: TopicsConcurrency, Logger: e.quiet})
	if err != nil {
		return err
	}
	res, start, err := e.drain(ctx, srv, w, rt, tr, topics...)
	if err != nil {
		return err
	}
	done := make([]time.Duration, len(finished))
	for i, at := range finished {
		done[i] = at.Sub(start)
	}
	slices.Sort(done)
	setPercentiles(&res, done)
	what := fmt.Sprintf("%s, server on Redis (concurrency %d, %v handler); percentiles: topic completion times",
		c.what, TopicsConcurrency, TopicsHandlerTime)
	e.report.add(ScenarioTopics, c.row, what, res)
	return nil
}

// enqueueTopics publishes counts[i] jobs to topics[i] in batches of
// BatchSize, with sequence numbers 0..sum(counts)-1: the untimed set-up.
func enqueueTopics(ctx context.Context, b broker.Broker, topics []string, counts []int, size int) error {
	ms := make([]broker.Message, 0, BatchSize)
	seq := 0
	flush := func() error {
		if len(ms) == 0 {
			return nil
		}
		_, err := b.PublishBatch(ctx, ms)
		ms = ms[:0]
		return err
	}
	for i, topic := range topics {
		for range counts[i] {
			ms = append(ms, broker.Message{Topic: topic, Payload: newPayload(size, seq, 0)})
			seq++
			if len(ms) == BatchSize {
				if err := flush(); err != nil {
					return fmt.Errorf("bench: enqueue: %w", err)
				}
			}
		}
	}
	if err := flush(); err != nil {
		return fmt.Errorf("bench: enqueue: %w", err)
	}
	return nil
}
