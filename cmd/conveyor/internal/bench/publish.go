package bench

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/redis"
)

// benchTopic is the topic every scenario publishes to.
const benchTopic = "bench"

// runPublish measures conveyor's Redis broker publishing N jobs: one at a
// time from one goroutine, one at a time from Concurrency goroutines, and in
// batches of BatchSize from one goroutine.
func runPublish(ctx context.Context, e *env) error {
	for _, v := range []struct {
		row, what string
		pub       func(context.Context, *redis.Broker) error
	}{
		{RowPublishSingle, "conveyor Publish, one job per call, one goroutine; p50… of one call", e.publishSingle},
		{RowPublishConcurrent, fmt.Sprintf("conveyor Publish, one job per call, %d goroutines", e.cfg.Concurrency), e.publishConcurrent},
		{RowPublishBatch, "conveyor PublishBatch of 100, one goroutine", e.publishBatch},
	} {
		if err := e.publishOnce(ctx, v.row, v.what, v.pub); err != nil {
			return err
		}
	}
	return nil
}

func (e *env) publishOnce(ctx context.Context, row, what string, pub func(context.Context, *redis.Broker) error) error {
	rt := &roundTrips{}
	b, release, err := e.openRedis("publish", rt)
	if err != nil {
		return err
	}
	defer release()
	if row == RowPublishSingle && cap(e.calls) < e.cfg.N {
		e.calls = make([]time.Duration, 0, e.cfg.N) // before the clock starts
	}
	m := startMeter(e, rt)
	if err := pub(ctx, b); err != nil {
		m.end()
		return fmt.Errorf("bench: %s: %w", row, err)
	}
	res := result(e.cfg.N, m.end())
	if row == RowPublishSingle && len(e.calls) == e.cfg.N {
		slices.Sort(e.calls)
		setPercentiles(&res, e.calls)
	}
	if l, _, err := e.topicState(ctx, b, benchTopic); err != nil || l != int64(e.cfg.N) {
		return fmt.Errorf("bench: %s: stream holds %d jobs after publishing %d (%v)", row, l, e.cfg.N, err)
	}
	e.report.add(ScenarioPublish, row, what, res)
	return nil
}

// publishSingle publishes N jobs one at a time and records how long each
// call took in e.calls.
func (e *env) publishSingle(ctx context.Context, b *redis.Broker) error {
	if cap(e.calls) < e.cfg.N {
		e.calls = make([]time.Duration, 0, e.cfg.N)
	}
	e.calls = e.calls[:0]
	for i := range e.cfg.N {
		m := broker.Message{Topic: benchTopic, Payload: newPayload(e.cfg.PayloadSize, i, 0)}
		t := time.Now()
		if _, err := b.Publish(ctx, m); err != nil {
			return err
		}
		e.calls = append(e.calls, time.Since(t))
	}
	return nil
}

func (e *env) publishConcurrent(ctx context.Context, b *redis.Broker) error {
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		errMu sync.Mutex
		first error
	)
	for range e.cfg.Concurrency {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= e.cfg.N {
					return
				}
				if _, err := b.Publish(ctx, broker.Message{Topic: benchTopic, Payload: newPayload(e.cfg.PayloadSize, i, 0)}); err != nil {
					errMu.Lock()
					if first == nil {
						first = err
					}
					errMu.Unlock()
					next.Store(int64(e.cfg.N))
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}

func (e *env) publishBatch(ctx context.Context, b *redis.Broker) error {
	return publishBatches(ctx, b, 0, e.cfg.N, e.cfg.PayloadSize)
}

// publishBatches publishes jobs from..to-1 in batches of BatchSize from one
// goroutine.
func publishBatches(ctx context.Context, b broker.Publisher, from, to, size int) error {
	ms := make([]broker.Message, 0, BatchSize)
	for i := from; i < to; i += BatchSize {
		ms = ms[:0]
		for j := i; j < min(i+BatchSize, to); j++ {
			ms = append(ms, broker.Message{Topic: benchTopic, Payload: newPayload(size, j, 0)})
		}
		if _, err := b.PublishBatch(ctx, ms); err != nil {
			return err
		}
	}
	return nil
}

// enqueue publishes jobs 0..n-1 in batches of BatchSize from a few
// goroutines: the untimed set-up of the processing scenarios.
func enqueue(ctx context.Context, b broker.Publisher, n, size int) error {
	const writers = 4
	var (
		wg   sync.WaitGroup
		errs [writers]error
	)
	per := (n + writers - 1) / writers
	per = (per + BatchSize - 1) / BatchSize * BatchSize
	for w := range writers {
		from, to := w*per, min((w+1)*per, n)
		if from >= to {
			break
		}
		wg.Go(func() { errs[w] = publishBatches(ctx, b, from, to, size) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return fmt.Errorf("bench: enqueue: %w", err)
		}
	}
	return nil
}
