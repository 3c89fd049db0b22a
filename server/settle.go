package server

import (
	"context"
	"errors"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/retry"
)

// settle carries out the outcome err asks for. A broker error is logged and
// counted: a settle that failed without effect leaves the job leased, to be
// redelivered after the lease; broker.ErrNotFound means it was already
// settled elsewhere.
func (s *Server) settle(ctx context.Context, d *broker.Delivery, err error) {
	j := &d.Job
	if err != nil && s.retrySet && errors.Is(err, retry.ErrDecided) {
		s.retryWarn.Do(func() {
			s.log.Warn("conveyor: Options.Retry is not used: the retry middleware in the handler chain decides", "topic", j.Topic)
		})
	}
	outcome, delay := job.Classify(err)
	if outcome != job.OutcomeAck {
		d.Result = nil // the result of a job that did not succeed is discarded
	}
	var serr error
	switch outcome {
	case job.OutcomeAck:
		s.acks.add(d)
		return
	case job.OutcomeRetry:
		serr = s.b.Retry(ctx, d, delay, s.failure(j, err, job.ReasonError))
		s.count(serr, &s.stats.retried)
	case job.OutcomeSnooze:
		if sr, ok := s.b.(broker.SnoozeRecorder); ok {
			serr = sr.SnoozeBecause(ctx, d, delay, snoozeCause(err))
		} else {
			serr = s.b.Snooze(ctx, d, delay)
		}
		s.count(serr, &s.stats.snoozed)
	case job.OutcomeDeadLetter:
		serr = s.b.DeadLetter(ctx, d, s.failure(j, err, job.ReasonPermanent))
		s.count(serr, &s.stats.deadLettered)
	default: // job.OutcomeFail: the server's retry policy decides.
		decision := s.retry.Decide(j, err)
		if outcome, delay = job.Classify(decision); outcome == job.OutcomeRetry {
			serr = s.b.Retry(ctx, d, delay, s.failure(j, err, job.ReasonError))
			s.count(serr, &s.stats.retried)
			break
		}
		outcome = job.OutcomeDeadLetter
		reason := job.ReasonExhausted
		if pe := (*job.PermanentError)(nil); errors.As(decision, &pe) && pe.Reason != "" {
			reason = pe.Reason
		}
		serr = s.b.DeadLetter(ctx, d, s.failure(j, err, reason))
		s.count(serr, &s.stats.deadLettered)
	}
	if serr != nil {
		msg := "conveyor: settling job failed: if the broker wrote nothing, the job stays pending and is redelivered after its lease"
		if errors.Is(serr, broker.ErrNotFound) {
			msg = "conveyor: job was no longer pending when settled (its lease expired and it was settled elsewhere); this outcome was not recorded"
		}
		s.log.Error(msg,
			"job_id", j.ID, "topic", j.Topic, "attempt", j.Attempt, "outcome", outcome.String(),
			"handler_error", err, "error", serr)
	}
}

// snoozeCause returns the text of the cause of the snooze err asks for
// (job.SnoozeBecause), or "" when it has none.
func snoozeCause(err error) string {
	var se *job.SnoozeError
	if errors.As(err, &se) && se.Cause != nil {
		return se.Cause.Error()
	}
	return ""
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
