package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/server"
)

// The delayed scenario's load: DelayedRate jobs per second, each delayed by
// a random duration in [0, DelayedMaxDelay).
const (
	DelayedRate     = 1000
	DelayedMaxDelay = 2 * time.Second
)

// runDelayed publishes min(N, LatencyJobs) jobs one at a time at
// DelayedRate per second, each with a random delay in [0,
// DelayedMaxDelay), through the broker of a running server (Redis, no
// middleware). Each payload carries its due time; the handler records how
// late it started: handler start - due time.
func runDelayed(ctx context.Context, e *env) error {
	n := min(e.cfg.N, e.cfg.LatencyJobs)
	rt := &roundTrips{}
	b, err := e.openRedis(ScenarioDelayed, rt)
	if err != nil {
		return err
	}
	ns := b.Options().Namespace
	defer func() {
		_ = b.Close()
		_ = e.cleanup(ns)
	}()

	late := make([]atomic.Int64, n)
	mux := job.NewMux()
	mux.HandleFunc(benchTopic, func(_ context.Context, j *job.Job) error {
		seq, ok1 := payloadSeq(j.Payload)
		due, ok2 := payloadTime(j.Payload)
		if ok1 && ok2 && seq < n {
			// Never 0: collect treats 0 as "not measured".
			late[seq].Store(max(time.Now().UnixNano()-due, 1))
		}
		return nil
	})
	w := newAckWatch(b, n)
	srv, err := server.New(w, mux, &server.Options{Concurrency: e.cfg.Concurrency, Logger: e.quiet})
	if err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	runErr := make(chan error, 1)
	go func() { runErr <- srv.Run(runCtx) }()
	fail := func(err error) error {
		stop()
		return fmt.Errorf("bench: delayed: %w", errors.Join(err, <-runErr))
	}

	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	period := time.Second / DelayedRate
	m := startMeter(e, rt)
	t0 := m.start
	for i := range n {
		if d := time.Until(t0.Add(time.Duration(i) * period)); d > 0 {
			time.Sleep(d)
		}
		delay := time.Duration(rnd.Int64N(int64(DelayedMaxDelay)))
		// Due times are kept in whole milliseconds: the payload carries
		// the due time the broker uses.
		due := time.Now().Add(delay).Truncate(time.Millisecond)
		p := newPayload(e.cfg.PayloadSize, i, due.UnixNano())
		if _, err := b.Publish(ctx, broker.Message{Topic: benchTopic, Payload: p, ProcessAt: due}); err != nil {
			m.end()
			return fail(err)
		}
	}
	doneAt, err := w.wait(ctx, stallTimeout)
	if err != nil {
		m.end()
		return fail(err)
	}
	meas := m.endAt(doneAt)
	stop()
	if err := <-runErr; err != nil {
		return fmt.Errorf("bench: delayed: %w", err)
	}
	lateness, err := collect(late)
	if err != nil {
		return fmt.Errorf("bench: delayed: %w", err)
	}
	what := fmt.Sprintf("%d jobs published at %d/s through the server's broker, each delayed 0-%v at random: due time -> handler start",
		n, DelayedRate, DelayedMaxDelay)
	res := result(n, meas)
	setPercentiles(&res, lateness)
	e.report.add(ScenarioDelayed, RowDelayed, what, res)
	return nil
}
