package middleware

import (
	"log/slog"
	"time"

	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/retry"
)

// DefaultOptions configures [Default]. Every field may be left zero: nil
// parts are left out of the stack, except DeadLetter, Retry, Timeout (which
// applies the jobs' own deadlines, job.Job.Timeout, even with none of its
// own) and Recover, which are always in it.
type DefaultOptions struct {
	// Logger receives one record per outcome ([Logging]); nil means no
	// logging middleware.
	Logger *slog.Logger
	// Logging configures the records; nil means defaults.
	Logging *LoggingOptions
	// Recorder receives metrics ([Metrics]); nil means no metrics
	// middleware.
	Recorder Recorder
	// DeadLetter configures dead-letter annotation; nil means defaults.
	DeadLetter *DeadLetterOptions
	// Retry is the retry policy; nil means the default policy (5 s, 15 s,
	// 60 s, then dead-letter). RetryFunc, when set, replaces it.
	Retry *retry.Policy
	// RetryFunc chooses a policy per topic (see [RetryFunc]).
	RetryFunc func(topic string) retry.Policy
	// RateLimit configures rate limiting; nil means none.
	RateLimit *RateLimitOptions
	// Breakers are the circuit breakers to run jobs through (see
	// [NewBreakers]); nil means none.
	Breakers *Breakers
	// Timeout is every handler's deadline; zero means none. TimeoutFunc,
	// when set, replaces it with a deadline per topic. A job's own Timeout
	// wins over both.
	Timeout     time.Duration
	TimeoutFunc func(topic string) time.Duration
	// Recover configures panic recovery; nil means defaults.
	Recover *RecoverOptions
}

// Default returns the recommended middleware stack as one middleware; opts
// may be nil. See [DefaultStack] for the order and why.
func Default(opts *DefaultOptions) job.Middleware {
	return job.Chain(DefaultStack(opts)...)
}

// DefaultStack returns the recommended middleware, outermost first:
//
//	Logging → Metrics → DeadLetter → Retry → RateLimit → CircuitBreaker → Timeout → Recover → handler
//
// The order is chosen so that each layer sees what it must:
//
//   - Recover is innermost, so a panic becomes an error that the timeout,
//     the breaker, retry, metrics and logging all see as a failure.
//   - Timeout sits just outside Recover, so its deadline bounds the handler
//     alone, not the rate limiter's store call (a slow Redis must not eat
//     the handler's time), and the breaker sees a handler that timed out as
//     a failure: a hung dependency trips the breaker.
//   - RateLimit sits outside the breaker, so throttled jobs never reach it
//     and cannot trip it or use up its half-open trials.
//   - Retry is outside all of them: it turns the failures they report into
//     a retry or, on the last attempt, a dead letter; snoozes from the rate
//     limiter and the breaker pass through it without spending an attempt.
//   - DeadLetter fills the dead letter's reason and handler name (it gives
//     the same result inside or outside Retry, by design).
//   - Metrics and Logging are outermost so that they record final outcomes:
//     a failure that will be retried is counted and logged once, as a retry.
//
// Parts that opts leaves nil are omitted; the order of the rest is kept.
func DefaultStack(opts *DefaultOptions) []job.Middleware {
	var o DefaultOptions
	if opts != nil {
		o = *opts
	}
	var stack []job.Middleware
	if o.Logger != nil {
		stack = append(stack, Logging(o.Logger, o.Logging))
	}
	if o.Recorder != nil {
		stack = append(stack, Metrics(o.Recorder))
	}
	stack = append(stack, DeadLetter(o.DeadLetter))
	switch {
	case o.RetryFunc != nil:
		stack = append(stack, RetryFunc(o.RetryFunc))
	case o.Retry != nil:
		stack = append(stack, Retry(*o.Retry))
	default:
		stack = append(stack, Retry(retry.Policy{}))
	}
	if o.RateLimit != nil {
		stack = append(stack, RateLimit(o.RateLimit))
	}
	if o.Breakers != nil {
		stack = append(stack, o.Breakers.Middleware())
	}
	switch {
	case o.TimeoutFunc != nil:
		stack = append(stack, TimeoutFunc(o.TimeoutFunc))
	default:
		// Even with no deadline of its own, Timeout applies the jobs'.
		stack = append(stack, Timeout(o.Timeout))
	}
	return append(stack, Recover(o.Recover))
}
