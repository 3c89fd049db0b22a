package middleware_test

import (
	"context"
	"testing"

	"go.uber.org/goleak"

	"github.com/conveyor-jobs/conveyor/job"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// run runs j through mw around h and returns the outcome error.
func run(tb testing.TB, mw job.Middleware, h job.HandlerFunc, j *job.Job) error {
	tb.Helper()
	return mw(h).ProcessJob(context.Background(), j)
}

// fixed returns a jitter source that always returns v.
func fixed(v float64) func() float64 { return func() float64 { return v } }
