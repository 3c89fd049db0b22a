package job

import (
	"context"
	"errors"
)

// ErrCancelled is the cause of the context of a job an operator cancelled
// while its handler ran: the server ends the handler's context with it, so
// that context.Cause(ctx) matches it with [errors.Is] and ctx.Err() is
// context.Canceled. Whatever the handler returns after that, except nil, the
// server dead-letters the job with reason [ReasonCancelled]; a handler that
// returns nil finished its work and the job is acknowledged.
var ErrCancelled = errors.New("conveyor: job cancelled")

// Cancelled reports whether ctx, a handler's context, was ended because an
// operator cancelled the job.
func Cancelled(ctx context.Context) bool {
	return ctx.Err() != nil && errors.Is(context.Cause(ctx), ErrCancelled)
}
