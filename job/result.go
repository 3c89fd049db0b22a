package job

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
)

// MaxResultSize bounds the size of a job's result in bytes, as encoded
// ([SetResult], [SetResultBytes]): 1 MiB. A result is stored with the job's
// outcome and kept for a while; large artefacts belong in a blob store, with
// their address as the result.
const MaxResultSize = 1 << 20

// ErrNoReporter is matched by the error of [SetResult] and [SetResultBytes]
// called with a context that does not come from a server running the job
// (see [WithReporter]).
var ErrNoReporter = errors.New("conveyor: no result recorder in the context: SetResult works only in a handler run by a server (or a context from job.WithReporter)")

// ErrResultTooLarge is matched by the error of [SetResult] and
// [SetResultBytes] for a result larger than [MaxResultSize].
var ErrResultTooLarge = errors.New("conveyor: result too large")

// Reporter receives what a running job reports about itself: its result and
// its progress. The server installs one in the context of every job it runs
// ([WithReporter]); handlers reach it through [SetResult], [SetResultBytes]
// and [Progress], never directly.
//
// Implementations must be safe for concurrent use: a handler may report
// from several goroutines.
type Reporter interface {
	// SetResult records b, already encoded and bounded, as the job's
	// result, replacing any earlier one. It is stored only if the job
	// succeeds. The reporter may keep b.
	SetResult(b []byte)
	// Progress records how far the job has got: fraction is in [0, 1].
	Progress(fraction float64, message string)
}

// reporterKey is the context key of the job's Reporter.
type reporterKey struct{}

// WithReporter returns a copy of ctx carrying r, which [SetResult],
// [SetResultBytes] and [Progress] report to. The server calls it for every
// job; tests of handlers may call it with a reporter of their own.
func WithReporter(ctx context.Context, r Reporter) context.Context {
	return context.WithValue(ctx, reporterKey{}, r)
}

// ReporterFrom returns the Reporter in ctx, or nil.
func ReporterFrom(ctx context.Context) Reporter {
	r, _ := ctx.Value(reporterKey{}).(Reporter)
	return r
}

// SetResult records v, encoded as JSON, as the result of the job ctx runs.
// The result is stored with the job when it succeeds (the handler returns
// nil) and can be read back by the job's ID (broker.JobReader, the CLI's
// "conveyor job show"); the result of a job that does not succeed is
// discarded, so a job retried after a failure keeps the result of the
// attempt that succeeded. A later call replaces an earlier one. A broker
// that keeps no results (one that is not a broker.JobReader) drops it.
//
// It returns an error matching [ErrNoReporter] when ctx carries no
// reporter, [ErrResultTooLarge] when the encoding is larger than
// [MaxResultSize], and the encoder's error when v cannot be encoded; nothing
// is recorded then.
func SetResult(ctx context.Context, v any) error {
	r := ReporterFrom(ctx)
	if r == nil {
		return ErrNoReporter
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("conveyor: cannot encode result as JSON: %w", err)
	}
	return setResult(r, b)
}

// SetResultBytes is [SetResult] for a result already encoded: b is stored
// as it is (it need not be JSON). A nil b records an empty result. The
// reporter keeps b: do not change it afterwards.
func SetResultBytes(ctx context.Context, b []byte) error {
	r := ReporterFrom(ctx)
	if r == nil {
		return ErrNoReporter
	}
	if b == nil {
		b = []byte{}
	}
	return setResult(r, b)
}

func setResult(r Reporter, b []byte) error {
	if len(b) > MaxResultSize {
		return fmt.Errorf("%w: %d bytes, more than the bound of %d bytes (job.MaxResultSize); nothing was recorded", ErrResultTooLarge, len(b), MaxResultSize)
	}
	r.SetResult(b)
	return nil
}

// Progress reports how far the job ctx runs has got: fraction is clamped
// to [0, 1] (NaN counts as 0) and message says what it is doing (it may be
// empty). The server writes the latest report to the broker at most once a
// second per job, so a handler may call Progress as often as it likes.
// Progress is a no-op when ctx carries no reporter.
func Progress(ctx context.Context, fraction float64, message string) {
	r := ReporterFrom(ctx)
	if r == nil {
		return
	}
	switch {
	case math.IsNaN(fraction) || fraction < 0:
		fraction = 0
	case fraction > 1:
		fraction = 1
	}
	r.Progress(fraction, message)
}

// TypedResult adapts a function taking a decoded payload of type T and
// returning a result of type R to a [Handler], as [Typed] does: the payload
// is decoded as JSON and an undecodable one fails permanently. When fn
// returns a nil error, its result is recorded with [SetResult] (replacing
// any result fn recorded itself); a result that cannot be recorded (no
// reporter in the context, too large, not encodable) fails the job with
// that error, left to the retry policy, so that a result is never
// silently lost. When fn returns an error, the result is discarded.
func TypedResult[T, R any](fn func(ctx context.Context, args T, j *Job) (R, error)) Handler {
	if fn == nil {
		return nil
	}
	h := TypedWith(JSON{}, func(ctx context.Context, v T, j *Job) error {
		r, err := fn(ctx, v, j)
		if err != nil {
			return err
		}
		return SetResult(ctx, r)
	}).(*typed[T])
	h.name = fmt.Sprintf("job.TypedResult[%s, %s]", reflect.TypeFor[T](), reflect.TypeFor[R]())
	return h
}
