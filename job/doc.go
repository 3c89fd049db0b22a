// Package job defines what a job is and how it is handled: [Job], [Handler],
// [Typed] handlers, the [Mux] that routes jobs by topic, [Middleware] and
// [Chain], the outcomes a handler returns, and the results and progress it
// reports.
//
// # Handlers
//
// A handler processes one job and returns an error. Typed handlers decode the
// payload first:
//
//	type Task struct{ Prompt string `json:"prompt"` }
//
//	mux := job.NewMux()
//	mux.Handle("orchestrate", job.Typed(func(ctx context.Context, t Task, j *job.Job) error {
//		return run(ctx, t.Prompt)
//	}))
//
// # Outcomes are errors
//
// nil acknowledges the job. [RetryIn] re-enqueues it after a delay, spending
// an attempt; [Snooze] does the same without spending one; [Permanent] sends it
// to its dead-letter topic now. A plain error is left to the retry policy
// (the retry middleware, or the server's default). Nobody sleeps in-process:
// the broker carries each outcome out atomically.
//
// # Results and progress
//
// A handler records its result with [SetResult] (or returns it from a
// [TypedResult] handler) and reports how far it has got with [Progress]:
//
//	mux.Handle("orchestrate", job.TypedResult(func(ctx context.Context, t Task, j *job.Job) (Plan, error) {
//		job.Progress(ctx, 0.1, "planning")
//		return plan(ctx, t.Prompt)
//	}))
//
// The result is stored with the job when it succeeds and read back by the
// job's ID (broker.JobReader); the server writes progress at most once a
// second per job. Both reach the server through the [Reporter] it installs
// in each job's context.
//
// # Middleware
//
// Middleware wraps handlers; [Chain](a, b, c) runs a first. [Mux.Use] adds
// middleware for every topic and [Mux.With] for some.
package job
