package middleware

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/conveyor-jobs/conveyor/internal/redact"
	"github.com/conveyor-jobs/conveyor/job"
)

// LoggingOptions configures [Logging]. The zero value is usable.
type LoggingOptions struct {
	// AckLevel is the level of the record for an acknowledged job; nil
	// means slog.LevelDebug. Set slog.LevelInfo to see every success.
	AckLevel slog.Leveler
	// SnoozeLevel is the level for a snoozed job (rate limited, circuit
	// open); nil means slog.LevelDebug.
	SnoozeLevel slog.Leveler
	// RetryLevel is the level for a job that will be retried, and for a
	// plain error left to the server's policy; nil means slog.LevelWarn.
	RetryLevel slog.Leveler
	// DeadLetterLevel is the level for a dead-lettered job; nil means
	// slog.LevelError.
	DeadLetterLevel slog.Leveler
	// LogPayload adds the payload (at most MaxPayload bytes) to every
	// record. Off by default: payloads may hold personal data or secrets.
	LogPayload bool
	// MaxPayload caps the logged payload; zero means 1024 bytes.
	MaxPayload int
	// Now returns the current time, for durations; nil means time.Now.
	Now func() time.Time
}

// Logging returns middleware that writes one record per job outcome to
// logger, with the job's id, topic and attempt, the handler's duration, the
// outcome ("ack", "retry", "snooze", "dead-letter", "fail" or "abandoned"),
// the delay of a retry or snooze, the dead-letter reason, and the error.
// opts may be nil; a nil logger logs nothing.
//
// Levels: ack and snooze at Debug, retry and fail at Warn, dead-letter at
// Error (see [LoggingOptions] to change them). Put Logging outermost so that it
// logs the final outcome, after retry and dead-letter decisions.
//
// A job its server abandoned at shutdown is logged at the retry level as
// "job abandoned at shutdown: …" with outcome "abandoned" and
// redelivered_after, the time its lease ends: the server settles nothing for
// it, and the broker redelivers it after that time. That is the case when
// its context ended with a [job.AbandonedError] and the chain returned the
// answer to it (an error matching context.Canceled) or returned after the
// lease ended (see [job.Abandoned]); an outcome returned before then is
// logged as such, since the server carries it out.
//
// A job whose context ended otherwise before the chain returned is logged at
// the retry level as "job interrupted: …", with the context's error and what
// the chain returned under "returned" rather than "outcome": whoever ended
// the context decides what becomes of the job.
//
// Logging never logs headers, nor the payload unless opts.LogPayload is set,
// and it removes passwords from URLs in error texts:
// "redis://user:secret@host" is logged as "redis://user:xxxxx@host".
func Logging(logger *slog.Logger, opts *LoggingOptions) job.Middleware {
	var o LoggingOptions
	if opts != nil {
		o = *opts
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxPayload <= 0 {
		o.MaxPayload = 1024
	}
	ackLevel := levelOr(o.AckLevel, slog.LevelDebug)
	snoozeLevel := levelOr(o.SnoozeLevel, slog.LevelDebug)
	retryLevel := levelOr(o.RetryLevel, slog.LevelWarn)
	dlLevel := levelOr(o.DeadLetterLevel, slog.LevelError)
	return func(next job.Handler) job.Handler {
		if logger == nil {
			return next
		}
		return job.HandlerFunc(func(ctx context.Context, j *job.Job) error {
			start := o.Now()
			err := next.ProcessJob(ctx, j)
			elapsed := o.Now().Sub(start)

			outcome, delay := job.Classify(err)
			var level slog.Level
			var msg string
			switch outcome {
			case job.OutcomeAck:
				level, msg = ackLevel, "job acked"
			case job.OutcomeSnooze:
				level, msg = snoozeLevel, "job snoozed"
			case job.OutcomeRetry:
				level, msg = retryLevel, "job will be retried"
			case job.OutcomeDeadLetter:
				level, msg = dlLevel, "job dead-lettered"
			default:
				level, msg = retryLevel, "job failed"
			}
			leaseEnd, abandoned := job.Abandoned(ctx, j, err, o.Now())
			var cause *job.AbandonedError
			// A context ended otherwise than by a server giving up on the
			// job: whoever ended it decides what becomes of the job.
			interrupted := ctx.Err() != nil && !errors.As(context.Cause(ctx), &cause)
			switch {
			case abandoned:
				level, msg = retryLevel, "job abandoned at shutdown: it stays pending and is redelivered after its lease ends"
			case interrupted:
				// Do not announce an outcome that may never be carried out.
				level, msg = retryLevel, "job interrupted: its context ended before it finished"
			}
			if !logger.Enabled(ctx, level) {
				return err
			}
			attrs := make([]slog.Attr, 0, 9)
			attrs = append(attrs,
				slog.String("job_id", j.ID),
				slog.String("topic", j.Topic),
				slog.Int("attempt", j.Attempt),
				slog.Duration("duration", elapsed),
			)
			switch {
			case abandoned:
				attrs = append(attrs, slog.String("outcome", "abandoned"))
				if !leaseEnd.IsZero() {
					attrs = append(attrs, slog.Time("redelivered_after", leaseEnd))
				}
			case interrupted:
				attrs = append(attrs, slog.String("returned", outcome.String()), slog.String("context", ctx.Err().Error()))
			default:
				attrs = append(attrs, slog.String("outcome", outcome.String()))
				switch outcome {
				case job.OutcomeRetry, job.OutcomeSnooze:
					attrs = append(attrs, slog.Duration("delay", delay))
				case job.OutcomeDeadLetter:
					f := job.FailureOf(j, err, job.ReasonPermanent, time.Time{})
					attrs = append(attrs, slog.String("reason", f.Reason))
					if f.Handler != "" {
						attrs = append(attrs, slog.String("handler", f.Handler))
					}
				}
			}
			if err != nil {
				attrs = append(attrs, slog.String("error", redact.URLsIn(err.Error())))
				var pe *job.PanicError
				if errors.As(err, &pe) {
					attrs = append(attrs, slog.String("stack", string(pe.Stack)))
				}
			}
			if o.LogPayload {
				p := j.Payload
				if len(p) > o.MaxPayload {
					p = p[:o.MaxPayload]
				}
				attrs = append(attrs, slog.String("payload", string(p)))
			}
			logger.LogAttrs(ctx, level, msg, attrs...)
			return err
		})
	}
}

func levelOr(l slog.Leveler, def slog.Level) slog.Level {
	if l == nil {
		return def
	}
	return l.Level()
}
