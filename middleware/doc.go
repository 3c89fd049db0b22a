// Package middleware provides the job middleware conveyor ships: recovery,
// timeouts, logging, retry with backoff, dead-letter routing, rate limiting,
// circuit breaking and metrics. Each is a [job.Middleware], a
// func(job.Handler) job.Handler, in a file of its own.
//
// # The recommended stack
//
// [Default] returns the stack most workers want, in the order that makes each
// part see what it must (see [DefaultStack] for the reasons):
//
//	Logging → Metrics → DeadLetter → Retry → RateLimit → CircuitBreaker → Timeout → Recover → handler
//
// Install it once on the mux, before the handlers:
//
//	mux := job.NewMux()
//	mux.Use(middleware.Default(&middleware.DefaultOptions{
//		Logger:  slog.Default(),
//		Timeout: 2 * time.Minute,
//		DeadLetter: &middleware.DeadLetterOptions{
//			HandlerName: func(j *job.Job) string { return mux.HandlerName(j.Topic) },
//		},
//	}))
//	mux.Handle("orchestrate", h)
//
// # Outcomes, not sleeps
//
// Middleware never sleeps to retry. It returns an outcome as an error, and the
// broker carries it out atomically: [Retry] turns a failure into
// job.RetryIn(delay, err) or, on the last attempt, a permanent error wrapping
// job.ErrRetriesExhausted; [RateLimit] and [CircuitBreaker] return
// job.SnoozeBecause(delay, cause), which re-enqueues the job without spending
// an attempt; [DeadLetter] fills in the reason and handler the dead letter
// records. Because every delay is computed from the job's Attempt, a retry
// survives a crash of the worker that scheduled it.
//
// # Retry schedule
//
// [Retry] applies a [retry.Policy]. The zero Policy retries after 5 s, 15 s
// and 60 s (±10% jitter) and dead-letters the job when its 4th attempt
// fails; a job whose producer set its own MaxAttempts gets that many. Set
// Schedule for other fixed delays, or InitialInterval (with Multiplier,
// MaxInterval and RandomizationFactor, as in github.com/cenkalti/backoff/v4)
// for exponential ones; [RetryByTopic] and [RetryFunc] choose a policy per
// topic. With Retry in the chain the server's own Options.Retry is never
// consulted.
//
// # Rate limits per tenant and operation
//
// [RateLimit] draws one token per job from the bucket its [KeyFunc] picks
// ([ByTenant], [ByOperation], [ByTenantOperation], …). Buckets live in the
// process ([NewMemoryStore]) or, shared by every worker, in Redis
// (package middleware/redisstore).
//
// # Writing your own
//
// A middleware wraps the next handler and returns what it returns, or an
// outcome of its own:
//
//	func Audit(log *slog.Logger) job.Middleware {
//		return func(next job.Handler) job.Handler {
//			return job.HandlerFunc(func(ctx context.Context, j *job.Job) error {
//				err := next.ProcessJob(ctx, j)
//				log.Info("audit", "job_id", j.ID, "tenant", j.Header("tenant"), "ok", err == nil)
//				return err
//			})
//		}
//	}
//
// Return job.Permanent to refuse a job for good, job.Snooze to put it off
// without spending an attempt, and a plain error to let [Retry] decide.
// Build state (maps, clients) when the middleware is created, not per job,
// and keep it safe for concurrent use: handlers run on many goroutines.
package middleware
