package server_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/middleware"
	"github.com/conveyor-jobs/conveyor/retry"
	"github.com/conveyor-jobs/conveyor/server"
)

// TestRetryMiddlewareDecides runs failing jobs through a chain with the
// retry middleware: its policy decides (the server's is never consulted),
// and a server whose Options.Retry was set says so once.
func TestRetryMiddlewareDecides(t *testing.T) {
	const warning = "conveyor: Options.Retry is not used: the retry middleware in the handler chain decides"
	for _, tt := range []struct {
		name     string
		retry    *retry.Policy
		wantWarn int
	}{
		{"Options.Retry set", &retry.Policy{MaxAttempts: 1}, 1},
		{"Options.Retry unset", nil, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := newBroker(t)
			mux := job.NewMux()
			mux.Use(middleware.Retry(retry.Policy{Schedule: []time.Duration{time.Hour}, RandomizationFactor: retry.NoJitter}))
			mux.HandleFunc("t", func(context.Context, *job.Job) error { return errors.New("boom") })
			logs := &logRecorder{}
			srv := start(t, b, mux, &server.Options{Retry: tt.retry, Logger: slogNew(logs)})
			for range 3 {
				publish(t, b, broker.Message{Topic: "t"})
			}
			waitFor(t, "three jobs retried", func() bool { return srv.Stats().Retried == 3 })
			// The middleware's schedule, not Options.Retry's single attempt.
			if info := inspect(t, b, "t"); info.Delayed != 3 || info.DeadLetters != 0 {
				t.Errorf("after one failure each: %+v, want 3 delayed and no dead letter", info)
			}
			if n := logs.count(warning); n != tt.wantWarn {
				t.Errorf("%d warnings %q, want %d", n, warning, tt.wantWarn)
			}
		})
	}
}
