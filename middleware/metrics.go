package middleware

import (
	"context"
	"errors"
	"time"

	"github.com/conveyor-jobs/conveyor/job"
)

// Metrics returns middleware that reports every job to rec: it counts
// [EventDequeued] when the job starts and, when it ends, one of
// [EventAcked], [EventRetried], [EventSnoozed] or [EventDeadLettered], from
// [job.Classify] of the returned error. Every run that ended in an error other
// than a snooze — retried, dead-lettered, or a plain error left to the
// server's policy — also counts [EventFailed], so failed/dequeued is the
// error rate. A snooze caused by [ErrRateLimited] also counts
// [EventRateLimited], one caused by [ErrCircuitOpen] [EventBreakerRejected].
// The handler's duration is observed with the outcome's name ("ack",
// "retry", "snooze", "dead-letter", "fail").
//
// Put Metrics near the outside of the chain (inside Logging) so that it
// counts final outcomes: a failure that Retry turns into a retry counts as
// retried. A nil rec disables it.
func Metrics(rec Recorder) job.Middleware {
	return func(next job.Handler) job.Handler {
		if rec == nil {
			return next
		}
		return job.HandlerFunc(func(ctx context.Context, j *job.Job) error {
			rec.Count(j.Topic, EventDequeued, 1)
			start := time.Now()
			err := next.ProcessJob(ctx, j)
			elapsed := time.Since(start)
			outcome, _ := job.Classify(err)
			switch outcome {
			case job.OutcomeAck:
				rec.Count(j.Topic, EventAcked, 1)
			case job.OutcomeRetry:
				rec.Count(j.Topic, EventRetried, 1)
				rec.Count(j.Topic, EventFailed, 1)
			case job.OutcomeSnooze:
				rec.Count(j.Topic, EventSnoozed, 1)
				switch {
				case errors.Is(err, ErrRateLimited):
					rec.Count(j.Topic, EventRateLimited, 1)
				case errors.Is(err, ErrCircuitOpen):
					rec.Count(j.Topic, EventBreakerRejected, 1)
				}
			case job.OutcomeDeadLetter:
				rec.Count(j.Topic, EventDeadLettered, 1)
				rec.Count(j.Topic, EventFailed, 1)
			default:
				rec.Count(j.Topic, EventFailed, 1)
			}
			rec.ObserveDuration(j.Topic, outcome.String(), elapsed)
			return err
		})
	}
}
