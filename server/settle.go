package server

import (
	"context"
	"errors"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/job"
)

// settle carries out the outcome err asks for. A broker error is logged and
// counted; the job then stays leased and is redelivered after the lease.
func (s *Server) settle(ctx context.Context, d *broker.Delivery, err error) {
	j := &d.Job
	outcome, delay := job.Classify(err)
	var serr error
	switch outcome {
	case job.OutcomeAck:
		s.acks <- d
		return
	case job.OutcomeRetry:
		serr = s.b.Retry(ctx, d, delay, s.failure(j, err, job.ReasonError))
		s.count(serr, &s.stats.retried)
	case job.OutcomeSnooze:
		serr = s.b.Snooze(ctx, d, delay)
		s.count(serr, &s.stats.snoozed)
	case job.OutcomeDeadLetter:
		serr = s.b.DeadLetter(ctx, d, s.failure(j, err, job.ReasonPermanent))
		s.count(serr, &s.stats.deadLettered)
	default: // job.OutcomeFail: the retry policy decides.
		var again bool
		delay, again = s.opts.RetryPolicy(j, err)
		if again {
			outcome = job.OutcomeRetry
			serr = s.b.Retry(ctx, d, max(delay, 0), s.failure(j, err, job.ReasonError))
			s.count(serr, &s.stats.retried)
			break
		}
		outcome = job.OutcomeDeadLetter
		reason := job.ReasonExhausted
		if pe := (*PanicError)(nil); errors.As(err, &pe) {
			reason = job.ReasonPanic
		}
		serr = s.b.DeadLetter(ctx, d, s.failure(j, err, reason))
		s.count(serr, &s.stats.deadLettered)
	}
	if serr != nil {
		s.log.Error("conveyor: settling job failed: it stays pending and is redelivered after its lease",
			"job_id", j.ID, "topic", j.Topic, "attempt", j.Attempt, "outcome", outcome.String(),
			"handler_error", err, "error", serr)
	}
}

func (s *Server) count(serr error, c *counter) {
	if serr != nil {
		s.stats.settleErrors.Add(1)
		return
	}
	c.Add(1)
}

// failure builds the Failure recorded with a retried or dead-lettered job.
func (s *Server) failure(j *job.Job, err error, reason string) job.Failure {
	f := job.FailureOf(j, err, reason, time.Now())
	if f.Handler == "" && s.namer != nil {
		f.Handler = s.namer.HandlerName(j.Topic)
	}
	return f
}

// acker collects acknowledgements from the workers and sends them in batches
// of up to AckBatch, each waiting at most AckInterval. It returns, after a
// final flush, when s.acks is closed.
func (s *Server) acker(ctx context.Context) {
	batch := make([]*broker.Delivery, 0, s.opts.AckBatch)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	armed := false
	flush := func() {
		if armed {
			timer.Stop()
			armed = false
		}
		if len(batch) == 0 {
			return
		}
		if err := s.b.Ack(ctx, batch...); err != nil {
			s.stats.settleErrors.Add(int64(len(batch)))
			s.log.Error("conveyor: acknowledging jobs failed: they stay pending and are redelivered after their lease",
				"jobs", len(batch), "first_job_id", batch[0].Job.ID, "error", err)
		} else {
			s.stats.acked.Add(int64(len(batch)))
		}
		clear(batch)
		batch = batch[:0]
	}
	for {
		select {
		case d, ok := <-s.acks:
			if !ok {
				flush()
				return
			}
			batch = append(batch, d)
			// Take whatever else is already waiting.
		drain:
			for len(batch) < s.opts.AckBatch {
				select {
				case d, ok := <-s.acks:
					if !ok {
						flush()
						return
					}
					batch = append(batch, d)
				default:
					break drain
				}
			}
			if len(batch) >= s.opts.AckBatch {
				flush()
			} else if !armed {
				timer.Reset(s.opts.AckInterval)
				armed = true
			}
		case <-timer.C:
			armed = false
			flush()
		}
	}
}
