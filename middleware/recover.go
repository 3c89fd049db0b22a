package middleware

import (
	"context"

	"github.com/conveyor-jobs/conveyor/job"
)

// RecoverOptions configures [Recover]. The zero value is usable.
type RecoverOptions struct {
	// OnPanic, when set, is called with the job and the recovered panic
	// before the error is returned (to report it, say). It must not panic.
	OnPanic func(ctx context.Context, j *job.Job, p *job.PanicError)
}

// Recover returns middleware that turns a panic in the handler into a
// [*job.PanicError] carrying the panic value and the stack, so that the worker
// goroutine survives and the job follows the retry policy like any failure.
// opts may be nil.
//
// Put Recover innermost, next to the handler: then the circuit breaker, the
// retry policy and the metrics see the panic as an ordinary error.
func Recover(opts *RecoverOptions) job.Middleware {
	var onPanic func(context.Context, *job.Job, *job.PanicError)
	if opts != nil {
		onPanic = opts.OnPanic
	}
	return func(next job.Handler) job.Handler {
		return job.HandlerFunc(func(ctx context.Context, j *job.Job) (err error) {
			defer func() {
				if v := recover(); v != nil {
					p := job.NewPanicError(v)
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
