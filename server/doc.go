// Package server runs jobs: a [Server] fetches them from a broker, runs each
// through a handler (usually a [job.Mux]) on a fixed pool of workers, and
// settles the outcome with the broker.
//
// # Running a server
//
//	mux := job.NewMux()
//	mux.Handle("orchestrate", job.Typed(func(ctx context.Context, t Task, j *job.Job) error {
//		return run(ctx, t.Prompt)
//	}))
//	srv, err := server.New(b, mux, &server.Options{Concurrency: 20})
//	if err != nil {
//		return err
//	}
//	return srv.Run(ctx) // until ctx ends, then a graceful drain
//
// The server fetches the mux's topics (or [Options.Topics]), asking the
// broker for batches no larger than its free workers, so it never holds more
// than [Options.Concurrency] jobs.
//
// # Outcomes
//
// The handler's error says what happens to the job ([job.Classify]):
//
//   - nil: the job is acknowledged (in batches of up to [Options.AckBatch]).
//   - job.RetryIn(d, err): re-enqueued after d as its next attempt.
//   - job.Snooze(d): re-enqueued after d without spending an attempt.
//   - job.Permanent(err): moved to its dead-letter topic now (an undecodable
//     payload and an unregistered topic are permanent failures too).
//   - any other error: [Options.Retry] decides (a retry.Policy, honouring
//     the job's own MaxAttempts); by default it retries after 5s, 15s and
//     60s (±10%) and dead-letters the job when its fourth attempt fails.
//     When the handler chain has the retry middleware, it decides every
//     failure instead and Options.Retry is never consulted.
//
// A handler panic is recovered by the server, logged, and treated as a plain
// error ([job.PanicError]); the worker goes on. When the broker cannot record an
// outcome, the server logs and counts it and the job stays pending: the
// broker redelivers it after its lease. Nothing is dropped silently.
//
// # Results and progress
//
// The server installs a job.Reporter in the context of every job it runs.
// The result the handler records (job.SetResult, job.TypedResult) is set on
// the delivery (broker.Delivery.Result) when the job succeeds and stored by
// the broker with the ack; the result of an attempt that fails is discarded.
// Progress (job.Progress) is written, when the broker keeps it
// (broker.ProgressRecorder), by one goroutine every [ProgressInterval]: the
// latest report of each running job, at most one write per job per
// interval, all jobs in one call. A report not yet written when its job
// ends is dropped: the job's outcome supersedes it.
//
// # Leases and shutdown
//
// Every [Options.HeartbeatInterval] (default a third of the broker's lease)
// the server renews the leases of all the jobs it holds in one call, so a
// long job on a live worker is never handed to another one.
//
// When Run's context ends, or [Server.Shutdown] is called, the server stops
// fetching and waits up to [Options.ShutdownTimeout] for the jobs in flight.
// Then it stops renewing their leases and cancels their context with a
// [job.AbandonedError] naming when each lease ends. An outcome a handler
// returns before its lease ends is settled; a job whose handler answers the
// cancellation (context.Canceled), or has not returned by then, is
// abandoned: logged, left pending, and redelivered after its lease. Run
// waits no longer than the last of those leases: a handler that ignores its
// context may run on after Run returns, and its result is discarded.
// Pending acknowledgements are flushed before Run returns. The server never installs signal handlers:
// pass a context from signal.NotifyContext.
//
// # Health
//
// [Server.Handler] serves /healthz and /readyz for probes; [Server.Stats]
// returns cheap counters.
package server
