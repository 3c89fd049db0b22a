package job

import (
	"context"
	"errors"
	"time"
)

// AbandonedError is the cause ([context.Cause]) of the jobs' context when
// the server running them stopped waiting for them at its shutdown timeout.
// Those jobs stay pending; their broker redelivers each once its lease ends,
// unless its handler returns an outcome before then (see [Abandoned]).
type AbandonedError struct {
	// LeaseEnds maps the ID of each job the server was running to when its
	// lease ends: the server no longer renews it, and the broker redelivers
	// the job after this time. It must not be modified.
	LeaseEnds map[string]time.Time
}

// Error says that the jobs were abandoned.
func (e *AbandonedError) Error() string {
	return "conveyor: job abandoned at shutdown: redelivered after its lease ends"
}

// Abandoned reports whether a handler's result err, returned at time now
// for job j run with ctx, is left unsettled because the server abandoned
// the job, and if so when the job's lease ends (zero when the server did not
// say). That is the case when ctx was ended with an [AbandonedError] and
// either err is the job's answer to that (it matches context.Canceled or
// holds an AbandonedError) or the lease ended before now. A handler that
// returns any other outcome (nil included) while the lease holds has that
// outcome carried out.
func Abandoned(ctx context.Context, j *Job, err error, now time.Time) (leaseEnd time.Time, ok bool) {
	var ab *AbandonedError
	if ctx.Err() == nil || !errors.As(context.Cause(ctx), &ab) {
		return time.Time{}, false
	}
	end, known := ab.LeaseEnds[j.ID]
	var answer *AbandonedError
	if errors.Is(err, context.Canceled) || errors.As(err, &answer) || (known && !now.Before(end)) {
		return end, true
	}
	return time.Time{}, false
}
