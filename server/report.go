package server

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/job"
)

// ProgressInterval is the least time between two writes of one job's
// progress to the broker: a handler may call job.Progress as often as it
// likes; the server writes the latest report of each running job at most
// once per ProgressInterval, all of them in one broker call.
const ProgressInterval = time.Second

// reporter is a worker's job.Reporter: it holds the result and the latest
// unwritten progress of the job the worker runs. The server installs it in
// the context of every job the worker runs, reset between jobs: a handler
// must not report after it returned (a report made then is dropped, or
// counted for the worker's next job).
type reporter struct {
	now func() time.Time

	mu      sync.Mutex
	d       *broker.Delivery // the job running; nil between jobs
	result  []byte           // nil: none recorded
	pending *broker.Progress // the latest progress not yet written
	written time.Time        // when progress of d was last written (zero: never)
}

var _ job.Reporter = (*reporter)(nil)

// begin starts d's job: nothing recorded yet.
func (r *reporter) begin(d *broker.Delivery) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.d, r.result, r.pending, r.written = d, nil, nil, time.Time{}
}

// end ends the job begun last and returns its result (nil: none). Progress
// not written yet is dropped: the job's outcome supersedes it.
func (r *reporter) end() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := r.result
	r.d, r.result, r.pending = nil, nil, nil
	return res
}

// SetResult records b as the result of the running job.
func (r *reporter) SetResult(b []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.d != nil {
		r.result = b
	}
}

// Progress records the latest progress of the running job, written by the
// server's next progress flush.
func (r *reporter) Progress(fraction float64, message string) {
	at := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.d != nil {
		r.pending = &broker.Progress{Fraction: fraction, Message: message, At: at}
	}
}

// take returns the progress of d to write now, if d is still the job
// running, it reported progress since the last write, and the last write
// was at least ProgressInterval before now; the latest report wins.
func (r *reporter) take(d *broker.Delivery, now time.Time) (broker.ProgressUpdate, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.d != d || r.pending == nil || (!r.written.IsZero() && now.Sub(r.written) < ProgressInterval) {
		return broker.ProgressUpdate{}, false
	}
	u := broker.ProgressUpdate{Delivery: d, Progress: *r.pending}
	r.pending, r.written = nil, now
	return u, true
}

// reportCtx returns the context to run a job with: parent with the
// worker's reporter. It is built again only when parent changes, so that a
// job costs no allocation for it.
func (w *worker) reportCtx(parent context.Context) context.Context {
	if w.repParent != parent {
		w.repParent, w.repCtx = parent, job.WithReporter(parent, &w.rep)
	}
	return w.repCtx
}

// flushProgress writes, every ProgressInterval until stop is closed, the
// latest progress of the jobs the workers hold that reported progress
// since it was last written, in one RecordProgress call. It does nothing
// when the broker keeps no progress (broker.ProgressRecorder).
func (s *Server) flushProgress(ctx context.Context, stop <-chan struct{}) {
	if s.progress == nil {
		<-stop
		return
	}
	var us []broker.ProgressUpdate
	failing := false
	s.everyHeld(stop, ProgressInterval, func(held []*broker.Delivery, holders []*worker) {
		us = s.progressTick(ctx, held, holders, us[:0], &failing)
	})
}

// progressTick writes the progress due now of the jobs held (held[i] by
// holders[i]), reusing us, and returns us for the next tick. A failed write
// is logged once until writes succeed again; its progress is not written
// again (a newer report will be).
func (s *Server) progressTick(ctx context.Context, held []*broker.Delivery, holders []*worker, us []broker.ProgressUpdate, failing *bool) []broker.ProgressUpdate {
	now := s.now()
	for i, w := range holders {
		if u, ok := w.rep.take(held[i], now); ok {
			us = append(us, u)
		}
	}
	if len(us) == 0 {
		return us
	}
	err := s.progress.RecordProgress(ctx, us...)
	switch {
	case err != nil && !errors.Is(err, broker.ErrClosed):
		if !*failing {
			s.log.Warn("conveyor: writing job progress failed: progress shown for running jobs is stale until it recovers", "jobs", len(us), "error", err)
		}
		*failing = true
	case err == nil && *failing:
		s.log.Info("conveyor: writing job progress recovered")
		*failing = false
	}
	clear(us)
	return us
}
