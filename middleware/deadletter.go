package middleware

import (
	"context"
	"errors"

	"github.com/conveyor-jobs/conveyor/job"
)

// DeadLetterOptions configures [DeadLetter]. The zero value is usable.
type DeadLetterOptions struct {
	// HandlerName names the handler of a job, recorded in its dead letter's
	// Failure.Handler when the error does not name one. Pass a Mux's
	// HandlerName method via a closure:
	//
	//	middleware.DeadLetter(&middleware.DeadLetterOptions{
	//		HandlerName: func(j *job.Job) string { return mux.HandlerName(j.Topic) },
	//	})
	//
	// Nil records no name. It must be safe for concurrent use.
	HandlerName func(j *job.Job) string
}

// DeadLetter returns middleware that prepares final failures for the
// dead-letter topic: for an error that dead-letters (a [job.PermanentError]
// anywhere in it, outermost outcome first), it fills the PermanentError's
// Reason and Handler when they are empty. The broker then moves the job to
// job.DeadLetterTopic(topic) = "<topic>.dlq" with that reason, in one atomic
// step. opts may be nil.
//
// The dead-letter topic is not configurable on purpose: the broker keeps a
// topic's stream, delayed set and dead letters under one Redis Cluster hash
// slot ("{<topic>}"), which is what lets the move be a single Lua script.
// Read dead letters by registering a handler for "<topic>.dlq", or with the
// broker's admin interface.
//
// Other outcomes pass through: acks, retries, snoozes and plain errors keep
// their meaning. A plain error is only tagged with the handler name (its text,
// outcome and errors.Is/As behaviour are unchanged), so that a permanent error
// that [Retry] makes of it later carries the name too.
//
// DeadLetter and [Retry] do not depend on their order: DeadLetter outside
// Retry sees Retry's final permanent error; inside it, DeadLetter's tag
// reaches Retry, which records the same reason and handler. Either way a
// failing job is retried per policy and dead-lettered when exhausted.
func DeadLetter(opts *DeadLetterOptions) job.Middleware {
	var nameOf func(*job.Job) string
	if opts != nil {
		nameOf = opts.HandlerName
	}
	return func(next job.Handler) job.Handler {
		return job.HandlerFunc(func(ctx context.Context, j *job.Job) error {
			err := next.ProcessJob(ctx, j)
			if err == nil {
				return nil
			}
			switch o, _ := job.Classify(err); o {
			case job.OutcomeDeadLetter:
				return annotatePermanent(err, j, nameOf)
			case job.OutcomeFail:
				if nameOf == nil || handlerNameOf(err) != "" {
					return err
				}
				if name := nameOf(j); name != "" {
					return &namedError{err: err, handler: name}
				}
			}
			return err
		})
	}
}

// annotatePermanent returns err with its permanent error's Reason and Handler
// filled. The handler's error value is never modified (it may be shared): a
// top-level *PermanentError is copied, a wrapped one is wrapped again.
func annotatePermanent(err error, j *job.Job, nameOf func(*job.Job) string) error {
	var pe *job.PermanentError
	if !errors.As(err, &pe) {
		return err
	}
	reason := pe.Reason
	if reason == "" {
		reason = reasonOf(err)
	}
	handler := pe.Handler
	if handler == "" {
		handler = handlerNameOf(err)
	}
	if handler == "" && nameOf != nil {
		handler = nameOf(j)
	}
	if reason == pe.Reason && handler == pe.Handler {
		return err
	}
	if top, ok := err.(*job.PermanentError); ok {
		cp := *top
		cp.Reason, cp.Handler = reason, handler
		return &cp
	}
	return &job.PermanentError{Err: err, Reason: reason, Handler: handler}
}

// reasonOf picks the dead-letter reason for a permanent error that has none.
func reasonOf(err error) string {
	var pe *job.PanicError
	switch {
	case errors.Is(err, job.ErrNoHandler):
		return job.ReasonNoHandler
	case errors.Is(err, job.ErrRetriesExhausted) && errors.As(err, &pe):
		return job.ReasonPanic
	case errors.Is(err, job.ErrRetriesExhausted):
		return job.ReasonExhausted
	}
	var de *job.DecodeError
	if errors.As(err, &de) {
		return job.ReasonUndecodable
	}
	return job.ReasonPermanent
}

// namedError tags a plain error with the name of the handler that returned
// it. It is invisible otherwise: same text, and it unwraps to the error.
type namedError struct {
	err     error
	handler string
}

func (e *namedError) Error() string { return e.err.Error() }
func (e *namedError) Unwrap() error { return e.err }

// handlerNameOf returns the handler name a [DeadLetter] tag in err's chain
// carries, or "".
func handlerNameOf(err error) string {
	var ne *namedError
	if errors.As(err, &ne) {
		return ne.handler
	}
	return ""
}
