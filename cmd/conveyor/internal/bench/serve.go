package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/server"
)

// serving is a server running in the background until stop.
type serving struct {
	cancel context.CancelFunc
	runErr chan error
}

// serve starts srv.Run in the background.
func serve(ctx context.Context, srv *server.Server) *serving {
	runCtx, cancel := context.WithCancel(ctx)
	s := &serving{cancel: cancel, runErr: make(chan error, 1)}
	go func() { s.runErr <- srv.Run(runCtx) }()
	return s
}

// stop stops the server and returns err joined with Run's error.
func (s *serving) stop(err error) error {
	s.cancel()
	return errors.Join(err, <-s.runErr)
}

// drain times srv, a server on w, from Run until w has seen all its jobs
// acknowledged, then stops it and checks that every job reached the
// handler (tr counts them) and that topics are left empty. It returns the
// run's result, with Processed set, and when its clock started. rt counts
// the broker's round trips (nil for no Redis).
func (e *env) drain(ctx context.Context, srv *server.Server, w *ackWatch, rt *roundTrips, tr *tracker, topics ...string) (RunResult, time.Time, error) {
	n := int(w.target)
	m := startMeter(e, rt)
	s := serve(ctx, srv)
	doneAt, waitErr := w.wait(ctx, stallTimeout)
	var meas measurement
	if waitErr == nil {
		meas = m.endAt(doneAt)
	} else {
		m.end()
	}
	if err := s.stop(waitErr); err != nil {
		return RunResult{}, time.Time{}, err
	}
	calls, missing := tr.count()
	if missing > 0 {
		return RunResult{}, time.Time{}, fmt.Errorf("%d of %d jobs never reached the handler", missing, n)
	}
	for _, topic := range topics {
		if l, p, err := e.topicState(ctx, w.Broker, topic); err != nil || l != 0 || p != 0 {
			return RunResult{}, time.Time{}, fmt.Errorf("after processing, topic %s length %d, pending %d (%v)", topic, l, p, err)
		}
	}
	res := result(n, meas)
	res.Processed = calls
	return res, m.start, nil
}

// pacedRate is the most jobs per second one goroutine of publishPaced
// publishes: above it, a Publish round trip (0.1–0.3 ms on a loaded 2-core
// machine) may take longer than the period.
const pacedRate = 2500

// pacedPublishers returns how many goroutines publishPaced uses at rate.
func pacedPublishers(rate int) int {
	return (rate + pacedRate - 1) / pacedRate
}

// publishPaced starts the clock and publishes n jobs one at a time through
// w's broker at rate per second (see pace); then it waits until w has seen
// all its jobs acknowledged and returns the measurement up to the last
// acknowledgement. rt counts the broker's round trips.
func (e *env) publishPaced(ctx context.Context, w *ackWatch, rt *roundTrips, n, rate int, msg func(i int) broker.Message) (measurement, error) {
	m := startMeter(e, rt)
	if err := pace(m.start, n, rate, func(i int) error {
		_, err := w.Publish(ctx, msg(i))
		return err
	}); err != nil {
		m.end()
		return measurement{}, err
	}
	doneAt, err := w.wait(ctx, stallTimeout)
	if err != nil {
		m.end()
		return measurement{}, err
	}
	return m.endAt(doneAt), nil
}

// pace calls publish(i) for i in [0, n), call i at t0 + i/rate seconds,
// from pacedPublishers(rate) goroutines (call i from goroutine i mod their
// number), and returns once every call has; a goroutine stops at its first
// error, and pace returns them all.
func pace(t0 time.Time, n, rate int, publish func(i int) error) error {
	k := pacedPublishers(rate)
	errs := make([]error, k)
	var wg sync.WaitGroup
	for g := range k {
		wg.Go(func() {
			for i := g; i < n; i += k {
				if d := time.Until(t0.Add(time.Duration(i) * time.Second / time.Duration(rate))); d > 0 {
					time.Sleep(d)
				}
				if err := publish(i); err != nil {
					errs[g] = err
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
