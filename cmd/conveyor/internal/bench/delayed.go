package bench

import (
	"context"
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
	b, release, err := e.openRedis(ScenarioDelayed, rt)
	if err != nil {
		return err
	}
	defer release()

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
	run := serve(ctx, srv)

	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	meas, err := e.publishPaced(ctx, w, rt, n, DelayedRate, func(i int) broker.Message {
		delay := time.Duration(rnd.Int64N(int64(DelayedMaxDelay)))
		// Due times are kept in whole milliseconds: the payload carries
		// the due time the broker uses.
		due := time.Now().Add(delay).Truncate(time.Millisecond)
		return broker.Message{Topic: benchTopic, Payload: newPayload(e.cfg.PayloadSize, i, due.UnixNano()), ProcessAt: due}
	})
	if err := run.stop(err); err != nil {
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
