package server

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/job"
)

// DefaultCancelInterval is how often, by default, a server whose broker
// records cancel requests (broker.CancelWatcher) asks it which of the jobs
// it holds were cancelled.
const DefaultCancelInterval = time.Second

// jobCancel is a worker's cancellable context for the job it runs. The
// context is reused from job to job until a cancel request ends it, so that
// a job costs no allocation and no lock, two atomic operations: a handler
// must not use its context after it returned.
type jobCancel struct {
	ctx     context.Context                         // the worker's goroutine only
	renew   bool                                    // the worker's goroutine only: ctx was cancelled
	cancel  atomic.Pointer[context.CancelCauseFunc] // ends ctx
	running atomic.Pointer[broker.Delivery]         // the job running under ctx; cancelled once a request ended it
}

// cancelled marks, in jobCancel.running, a job whose context a cancel
// request ended.
var cancelled = new(broker.Delivery)

// begin returns the context to run d with, a child of parent.
func (c *jobCancel) begin(parent context.Context, d *broker.Delivery) context.Context {
	if c.ctx == nil || c.renew {
		ctx, cancel := context.WithCancelCause(parent)
		c.ctx, c.renew = ctx, false
		c.cancel.Store(&cancel)
	}
	c.running.Store(d)
	return c.ctx
}

// end marks the end of the job begun last and reports whether a cancel
// request ended its context.
func (c *jobCancel) end() bool {
	if c.running.Swap(nil) != cancelled {
		return false
	}
	// request marked the job and then cancels its context: wait for that,
	// so that the next job never gets this cancel.
	<-c.ctx.Done()
	c.renew = true
	return true
}

// request ends the context of d with job.ErrCancelled, if d is still
// running and was not cancelled yet, and reports whether it did.
func (c *jobCancel) request(d *broker.Delivery) bool {
	if !c.running.CompareAndSwap(d, cancelled) {
		return false
	}
	(*c.cancel.Load())(job.ErrCancelled)
	return true
}

// watchCancels asks the broker every CancelInterval which of the jobs the
// workers hold an operator cancelled (one CancelRequested call, one round
// trip to Redis), and ends those jobs' contexts with job.ErrCancelled. It
// asks nothing while the workers hold no job. It returns when stop is
// closed.
func (s *Server) watchCancels(ctx context.Context, stop <-chan struct{}) {
	if s.watcher == nil {
		<-stop
		return
	}
	failing := false
	s.everyHeld(stop, s.opts.CancelInterval, func(held []*broker.Delivery, holders []*worker) {
		rs, err := s.watcher.CancelRequested(ctx, held...)
		s.stats.cancelChecks.Add(1)
		switch {
		case err != nil && !errors.Is(err, broker.ErrClosed):
			if !failing {
				s.log.Error("conveyor: reading cancel requests failed: cancelled jobs run on until it recovers", "jobs", len(held), "error", err)
			}
			failing = true
		case failing:
			s.log.Info("conveyor: reading cancel requests recovered")
			failing = false
		}
		for _, r := range rs {
			for i, d := range held {
				if d.Receipt == r && holders[i].jc.request(d) {
					s.log.Info("conveyor: cancelling job at an operator's request", "job_id", d.Job.ID, "topic", d.Job.Topic, "attempt", d.Job.Attempt)
				}
			}
		}
	})
}

// settleCancelled settles d, whose context a cancel request ended, after
// its handler returned err: nil means the work was done before the
// cancel reached it, and the job is acknowledged; any other outcome (an
// error, a retry, a snooze, a permanent failure) dead-letters the job with
// reason job.ReasonCancelled, whatever the retry policy or middleware
// decided.
func (s *Server) settleCancelled(ctx context.Context, d *broker.Delivery, err error) {
	j := &d.Job
	if err == nil {
		s.log.Info("conveyor: job finished before its cancel reached it: acknowledged", "job_id", j.ID, "topic", j.Topic, "attempt", j.Attempt)
		s.acks.add(d)
		return
	}
	f := s.failure(j, err, job.ReasonCancelled)
	f.Reason = job.ReasonCancelled
	serr := s.b.DeadLetter(ctx, d, f)
	s.count(serr, &s.stats.deadLettered)
	if serr != nil {
		s.log.Error("conveyor: dead-lettering a cancelled job failed: if the broker wrote nothing, the job stays pending and is redelivered after its lease, and cancelled again while its request lasts",
			"job_id", j.ID, "topic", j.Topic, "attempt", j.Attempt, "handler_error", err, "error", serr)
		return
	}
	s.stats.cancelled.Add(1)
	s.log.Info("conveyor: cancelled job dead-lettered", "job_id", j.ID, "topic", j.Topic, "attempt", j.Attempt, "reason", job.ReasonCancelled)
}
