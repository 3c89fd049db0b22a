package job

import "context"

// Handler processes jobs. ProcessJob returns nil to acknowledge the job, or an
// error whose kind decides what happens next: see [RetryIn], [Snooze],
// [Permanent]. A plain error is left to the retry policy.
//
// ProcessJob is called from many goroutines at once; ctx carries the job's
// deadline and is cancelled when the server shuts down hard.
type Handler interface {
	ProcessJob(ctx context.Context, j *Job) error
}

// HandlerFunc adapts an ordinary function to a [Handler].
type HandlerFunc func(ctx context.Context, j *Job) error

// ProcessJob calls f(ctx, j).
func (f HandlerFunc) ProcessJob(ctx context.Context, j *Job) error {
	return f(ctx, j)
}

// Middleware wraps a Handler with behaviour that runs around it.
type Middleware func(Handler) Handler

// Chain composes middleware into one. The first listed is the outermost: for
// Chain(a, b, c)(h), a runs first and calls b, which calls c, which calls h.
// Nil middlewares are skipped.
func Chain(mw ...Middleware) Middleware {
	return func(h Handler) Handler {
		for i := len(mw) - 1; i >= 0; i-- {
			if mw[i] != nil {
				h = mw[i](h)
			}
		}
		return h
	}
}
