package middleware

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/conveyor-jobs/conveyor/job"
)

// TimeoutError is the error [Timeout] returns for a handler that failed after
// its deadline passed. It matches [context.DeadlineExceeded] with errors.Is
// and is a plain failure: the retry policy retries it like any other error.
type TimeoutError struct {
	// Topic is the job's topic.
	Topic string
	// Timeout is the deadline the handler was given.
	Timeout time.Duration
	// Err is the error the handler returned.
	Err error
}

// Error returns "conveyor: job on topic T timed out after D: <err>".
func (e *TimeoutError) Error() string {
	if e.Err == nil || e.Err == context.DeadlineExceeded {
		return fmt.Sprintf("conveyor: job on topic %q timed out after %v", e.Topic, e.Timeout)
	}
	return fmt.Sprintf("conveyor: job on topic %q timed out after %v: %v", e.Topic, e.Timeout, e.Err)
}

// Is reports a match for [context.DeadlineExceeded].
func (e *TimeoutError) Is(target error) bool { return target == context.DeadlineExceeded }

// Unwrap returns the handler's error.
func (e *TimeoutError) Unwrap() error { return e.Err }

// Timeout returns middleware that gives each handler call a deadline of d
// through its context. A zero or negative d sets no deadline. A job whose
// producer set its own Timeout (job.Job.Timeout, from broker.Message) gets
// that deadline instead, with or without d.
//
// The deadline is cooperative: the handler must watch ctx (every ctx-aware
// call does). When the handler returns a plain error after the deadline
// passed, Timeout returns a [*TimeoutError] wrapping it, which matches
// [context.DeadlineExceeded] and is retried per policy. A handler that
// finishes successfully after its deadline is still acknowledged, and outcome
// errors (job.RetryIn, job.Snooze, job.Permanent) pass through untouched.
func Timeout(d time.Duration) job.Middleware {
	return TimeoutFunc(func(string) time.Duration { return d })
}

// TimeoutByTopic is [Timeout] with a deadline per topic, taken from
// timeouts, and def for topics not in the map. The map is copied.
func TimeoutByTopic(timeouts map[string]time.Duration, def time.Duration) job.Middleware {
	m := make(map[string]time.Duration, len(timeouts))
	for k, v := range timeouts {
		m[k] = v
	}
	return TimeoutFunc(func(topic string) time.Duration {
		if d, ok := m[topic]; ok {
			return d
		}
		return def
	})
}

// TimeoutFunc is [Timeout] with the deadline chosen per job by topic; a zero
// or negative result sets no deadline. The job's own Timeout, when set,
// wins. timeoutOf is called once per job and must be safe for concurrent
// use.
func TimeoutFunc(timeoutOf func(topic string) time.Duration) job.Middleware {
	return func(next job.Handler) job.Handler {
		return job.HandlerFunc(func(ctx context.Context, j *job.Job) error {
			d := j.Timeout
			if d <= 0 {
				d = timeoutOf(j.Topic)
			}
			if d <= 0 {
				return next.ProcessJob(ctx, j)
			}
			tctx, cancel := context.WithTimeout(ctx, d)
			defer cancel()
			err := next.ProcessJob(tctx, j)
			if err == nil || !errors.Is(tctx.Err(), context.DeadlineExceeded) {
				return err
			}
			if o, _ := job.Classify(err); o != job.OutcomeFail {
				return err
			}
			return &TimeoutError{Topic: j.Topic, Timeout: d, Err: err}
		})
	}
}
