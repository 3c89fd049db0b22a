package middleware

import (
	"context"
	"fmt"
	"runtime/debug"

	"github.com/conveyor-jobs/conveyor/job"
)

// PanicError is the error [Recover] returns for a handler that panicked. It is
// a plain failure to the outcome model: the retry policy retries it, and on the
// last attempt [Retry] dead-letters it with reason [job.ReasonPanic].
type PanicError struct {
	// Value is the value passed to panic.
	Value any
	// Stack is the panicking goroutine's stack, as [debug.Stack] formats it.
	Stack []byte
}

// Error returns "conveyor: handler panicked: <value>". The stack is not part
// of the text (it would flood logs and dead letters); read it from Stack.
func (e *PanicError) Error() string {
	return fmt.Sprintf("conveyor: handler panicked: %v", e.Value)
}

// Panicked reports true: it marks the error of a recovered panic, so that
// retry.Policy.Decide dead-letters it with reason job.ReasonPanic on the
// last attempt.
func (e *PanicError) Panicked() bool { return true }

// Unwrap returns Value when it is an error, so that errors.Is and errors.As
// see through a panic(err).
func (e *PanicError) Unwrap() error {
	if err, ok := e.Value.(error); ok {
		return err
	}
	return nil
}

// RecoverOptions configures [Recover]. The zero value is usable.
type RecoverOptions struct {
	// OnPanic, when set, is called with the job and the recovered panic
	// before the error is returned (to report it, say). It must not panic.
	OnPanic func(ctx context.Context, j *job.Job, p *PanicError)
}

// Recover returns middleware that turns a panic in the handler into a
// [*PanicError] carrying the panic value and the stack, so that the worker
// goroutine survives and the job follows the retry policy like any failure.
// opts may be nil.
//
// Put Recover innermost, next to the handler: then the circuit breaker, the
// retry policy and the metrics see the panic as an ordinary error.
func Recover(opts *RecoverOptions) job.Middleware {
	var onPanic func(context.Context, *job.Job, *PanicError)
	if opts != nil {
		onPanic = opts.OnPanic
	}
	return func(next job.Handler) job.Handler {
		return job.HandlerFunc(func(ctx context.Context, j *job.Job) (err error) {
			defer func() {
				if v := recover(); v != nil {
					p := &PanicError{Value: v, Stack: debug.Stack()}
					if onPanic != nil {
						onPanic(ctx, j, p)
					}
					err = p
				}
			}()
			return next.ProcessJob(ctx, j)
		})
	}
}
