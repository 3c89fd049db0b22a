package bench

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/server"
)

// The keys of the fairness scenario: a backlog of FairnessBacklogKey, and
// a trickle of FairnessTrickleKey, published FairnessTrickleRate times a
// second while the backlog drains.
const (
	FairnessBacklogKey  = "tenant-a"
	FairnessTrickleKey  = "tenant-b"
	FairnessTrickleRate = 10
	// fairnessPartitions is the partition count of the partitioned row;
	// the two keys map to different partitions of it.
	fairnessPartitions = 4
)

// runFairness measures how long a job of one key waits behind another
// key's backlog: N jobs of key A are enqueued (untimed), then a server
// drains them while jobs of key B are published at 10/s; B's waits
// (publish -> handler start) give the row's percentiles, and the jobs/s
// are A's drain. Row fairness-1 has the topic in one partition (B queues
// behind A), fairness-4 in four (A and B in different partitions).
func runFairness(ctx context.Context, e *env) error {
	for _, n := range []int{1, fairnessPartitions} {
		row := fmt.Sprintf("%s-%d", ScenarioFairness, n)
		if err := e.fairness(ctx, n, row); err != nil {
			return fmt.Errorf("bench: %s: %w", row, err)
		}
	}
	return nil
}

func (e *env) fairness(ctx context.Context, partitions int, row string) error {
	rt := &roundTrips{}
	b, release, err := e.openRedis(ScenarioFairness, rt)
	if err != nil {
		return err
	}
	defer release()
	if partitions > 1 {
		if err := b.SetPartitions(ctx, benchTopic, partitions); err != nil {
			return err
		}
		if broker.PartitionFor(FairnessBacklogKey, partitions) == broker.PartitionFor(FairnessTrickleKey, partitions) {
			return errors.New("the two keys map to one partition")
		}
	}
	n := e.cfg.N
	ms := make([]broker.Message, 0, BatchSize)
	for i := range n {
		ms = append(ms, broker.Message{Topic: benchTopic, Key: FairnessBacklogKey, Payload: newPayload(e.cfg.PayloadSize, i, 0)})
		if len(ms) == BatchSize || i == n-1 {
			if _, err := b.PublishBatch(ctx, ms); err != nil {
				return fmt.Errorf("enqueue: %w", err)
			}
			ms = ms[:0]
		}
	}

	const maxTrickle = 100000
	var (
		backlogDone atomic.Int64
		waits       = make([]atomic.Int64, maxTrickle)
		trickleDone atomic.Int64
	)
	mux := job.NewMux()
	mux.HandleFunc(benchTopic, func(_ context.Context, j *job.Job) error {
		seq, _ := payloadSeq(j.Payload)
		if seq < n {
			backlogDone.Add(1)
			return nil
		}
		if ts, ok := payloadTime(j.Payload); ok && seq-n < maxTrickle && waits[seq-n].Load() == 0 {
			waits[seq-n].Store(max(time.Now().UnixNano()-ts, 1))
			trickleDone.Add(1)
		}
		return nil
	})
	srv, err := server.New(b, mux, &server.Options{Concurrency: e.cfg.Concurrency, Logger: e.quiet})
	if err != nil {
		return err
	}
	m := startMeter(e, rt)
	run := serve(ctx, srv)
	period := time.Second / FairnessTrickleRate
	published := 0
	next := time.Now()
	stall := time.Now().Add(stallTimeout + time.Duration(n)*time.Millisecond)
	var drained time.Time
	for {
		if drained.IsZero() && backlogDone.Load() >= int64(n) {
			drained = time.Now()
		}
		if !drained.IsZero() && published >= FairnessTrickleRate && trickleDone.Load() >= int64(published) {
			break
		}
		if time.Now().After(stall) {
			return fmt.Errorf("bench: fairness: %w", run.stop(fmt.Errorf("%d of %d backlog jobs and %d of %d trickle jobs ran", backlogDone.Load(), n, trickleDone.Load(), published)))
		}
		if now := time.Now(); drained.IsZero() && !now.Before(next) && published < maxTrickle || published < FairnessTrickleRate && !now.Before(next) {
			p := newPayload(e.cfg.PayloadSize, n+published, time.Now().UnixNano())
			if _, err := b.Publish(ctx, broker.Message{Topic: benchTopic, Key: FairnessTrickleKey, Payload: p}); err != nil {
				return fmt.Errorf("bench: fairness: %w", run.stop(err))
			}
			published++
			next = next.Add(period)
		}
		time.Sleep(time.Millisecond)
	}
	meas := m.endAt(drained)
	if err := run.stop(nil); err != nil {
		return err
	}
	got := make([]time.Duration, published)
	for i := range got {
		got[i] = time.Duration(waits[i].Load())
	}
	slices.Sort(got)
	res := result(n, meas)
	res.Processed = backlogDone.Load() + trickleDone.Load()
	setPercentiles(&res, got)
	e.report.add(ScenarioFairness, row, fmt.Sprintf("N jobs of key A drained while key B publishes %d/s, topic in %d partition(s): jobs/s of A's drain, percentiles of B's wait (publish -> handler start, %d jobs)", FairnessTrickleRate, partitions, published), res)
	return nil
}
