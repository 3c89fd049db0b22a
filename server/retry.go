package server

import (
	"time"

	"github.com/conveyor-jobs/conveyor/job"
)

// RetryPolicy decides what happens to a job whose handler returned a plain
// error: retry it after delay (as its next attempt), or, when retry is false,
// dead-letter it with reason job.ReasonExhausted (job.ReasonPanic if the
// handler panicked). j.Attempt is the 1-based attempt that just failed.
//
// The policy only sees plain errors: outcomes (job.RetryIn, job.Snooze,
// job.Permanent) are carried out as they ask. When the retry middleware is
// installed it turns every failure into such an outcome, and the server's
// policy is never consulted. A RetryPolicy must be safe for concurrent use.
type RetryPolicy func(j *job.Job, err error) (delay time.Duration, retry bool)

// defaultSchedule is the schedule operators know: 5s, 15s, 60s, then the
// dead-letter topic.
var defaultSchedule = [...]time.Duration{5 * time.Second, 15 * time.Second, 60 * time.Second}

// DefaultRetryPolicy is the policy a server uses when none is given: 4
// attempts in all, the retries 5s, 15s and 60s after the failures of
// attempts 1, 2 and 3; a failure on attempt 4 or later dead-letters the job.
// It is RetrySchedule(5*time.Second, 15*time.Second, 60*time.Second).
func DefaultRetryPolicy(j *job.Job, _ error) (time.Duration, bool) {
	return scheduleDelay(defaultSchedule[:], j.Attempt)
}

// RetrySchedule returns a policy that retries a job len(delays) times: the
// failure of attempt n is retried after delays[n-1], and a failure on attempt
// len(delays)+1 or later dead-letters the job. With no delays it never
// retries. Zero or negative delays are raised to 1ms, so that a failing job
// never loops hot.
func RetrySchedule(delays ...time.Duration) RetryPolicy {
	ds := make([]time.Duration, len(delays))
	for i, d := range delays {
		ds[i] = max(d, time.Millisecond)
	}
	return func(j *job.Job, _ error) (time.Duration, bool) {
		return scheduleDelay(ds, j.Attempt)
	}
}

func scheduleDelay(ds []time.Duration, attempt int) (time.Duration, bool) {
	attempt = max(attempt, 1)
	if attempt > len(ds) {
		return 0, false
	}
	return ds[attempt-1], true
}
