package job

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// AbandonedError is the cause ([context.Cause]) of a job's context when the
// server running the job stopped waiting for it at its shutdown timeout. The
// job stays pending; its broker redelivers it once its lease ends, at
// LeaseEnd, unless the handler returns an outcome before then (see
// [Abandoned]).
type AbandonedError struct {
	// LeaseEnd is when the job's lease ends: the server no longer renews
	// it, and the broker redelivers the job after this time.
	LeaseEnd time.Time
}

// Error says that the job was abandoned and when it will be redelivered.
func (e *AbandonedError) Error() string {
	return fmt.Sprintf("conveyor: job abandoned at shutdown: redelivered after its lease ends at %s",
		e.LeaseEnd.Format(time.RFC3339Nano))
}

// Abandoned reports whether a handler's result err, returned at time now
// from a job run with ctx, is left unsettled because the server abandoned
// the job: ctx was ended with an [AbandonedError], and either err is the
// job's answer to that (it matches context.Canceled or holds an
// AbandonedError) or the
// lease ended before now. A handler that returns any other outcome (nil
// included) while the lease holds has that outcome carried out. The
// AbandonedError is returned with true.
func Abandoned(ctx context.Context, err error, now time.Time) (*AbandonedError, bool) {
	var ab *AbandonedError
	if ctx.Err() == nil || !errors.As(context.Cause(ctx), &ab) {
		return nil, false
	}
	var answer *AbandonedError
	if errors.Is(err, context.Canceled) || errors.As(err, &answer) || !now.Before(ab.LeaseEnd) {
		return ab, true
	}
	return nil, false
}
