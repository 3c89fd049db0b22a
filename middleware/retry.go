package middleware

import (
	"context"
	"errors"

	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/retry"
)

// Retry returns middleware that applies p to plain errors (a *job.PanicError and
// a *TimeoutError are plain errors too), as [retry.Policy.Decide] says:
//
//   - with attempts left, it returns job.RetryIn(delay, err), the delay
//     computed from the job's Attempt;
//   - on the last attempt (Attempt ≥ the job's MaxAttempts when its
//     producer set one, else p's), it returns a permanent error wrapping
//     [job.ErrRetriesExhausted] and err, with reason [job.ReasonExhausted]
//     ([job.ReasonPanic] for a panic), which the broker dead-letters;
//   - when p.RetryIf rejects err, it returns job.Permanent(err).
//
// Outcome errors the handler chose itself — job.RetryIn, job.Snooze,
// job.Permanent — pass through untouched, as does nil. A handler that returns
// job.RetryIn therefore chooses its own limit too: it should check j.Attempt
// (or return a plain error and let the policy count).
//
// The outcomes it makes match [retry.ErrDecided]: with Retry in the chain,
// the server's own policy (server.Options.Retry) is never consulted.
func Retry(p retry.Policy) job.Middleware {
	p = p.WithDefaults()
	return RetryFunc(func(string) retry.Policy { return p })
}

// RetryByTopic is [Retry] with a policy per topic, taken from policies, and
// def for topics not in the map. The map is copied.
func RetryByTopic(policies map[string]retry.Policy, def retry.Policy) job.Middleware {
	m := make(map[string]retry.Policy, len(policies))
	for k, v := range policies {
		m[k] = v.WithDefaults()
	}
	def = def.WithDefaults()
	return RetryFunc(func(topic string) retry.Policy {
		if p, ok := m[topic]; ok {
			return p
		}
		return def
	})
}

// RetryFunc is [Retry] with the policy chosen per job by topic. policyOf is
// called once per failed job and must be safe for concurrent use.
func RetryFunc(policyOf func(topic string) retry.Policy) job.Middleware {
	return func(next job.Handler) job.Handler {
		return job.HandlerFunc(func(ctx context.Context, j *job.Job) error {
			err := next.ProcessJob(ctx, j)
			if err == nil {
				return nil
			}
			if o, _ := job.Classify(err); o != job.OutcomeFail {
				return err
			}
			out := policyOf(j.Topic).Decide(j, err)
			var pe *job.PermanentError
			if errors.As(out, &pe) && pe.Handler == "" {
				pe.Handler = handlerNameOf(err)
			}
			return out
		})
	}
}
