package server_test

import (
	"context"
	"errors"
	"fmt"
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

// TestServerRetryHonoursJobMaxAttempts publishes jobs with their own
// MaxAttempts to a server that decides plain errors itself (no retry
// middleware): the job's limit wins over Options.Retry's.
func TestServerRetryHonoursJobMaxAttempts(t *testing.T) {
	clock := newFakeClock()
	b := newBroker(t, withClock(clock))
	mux := job.NewMux()
	mux.HandleFunc("t", func(context.Context, *job.Job) error { return errors.New("boom") })
	srv := start(t, b, mux, &server.Options{Retry: &retry.Policy{Schedule: []time.Duration{time.Second}, MaxAttempts: 5, RandomizationFactor: retry.NoJitter}})
	publish(t, b, broker.Message{Topic: "t", ID: "one", MaxAttempts: 1})
	waitFor(t, "the job with one attempt dead-lettered", func() bool { return srv.Stats().DeadLettered == 1 })
	dl := deadLetters(t, b, "t")
	if len(dl) != 1 || dl[0].Job.ID != "one" || dl[0].Job.Attempt != 1 || dl[0].Job.Failure == nil || dl[0].Job.Failure.Reason != job.ReasonExhausted {
		t.Fatalf("dead letters %+v, want job one exhausted at attempt 1", dl)
	}

	publish(t, b, broker.Message{Topic: "t", ID: "seven", MaxAttempts: 7})
	for n := 1; n < 7; n++ {
		waitFor(t, fmt.Sprintf("retry %d", n), func() bool { return srv.Stats().Retried == int64(n) && inspect(t, b, "t").Delayed == 1 })
		clock.Advance(time.Second)
	}
	waitFor(t, "the job with seven attempts dead-lettered", func() bool { return srv.Stats().DeadLettered == 2 })
	if dl := deadLetters(t, b, "t"); len(dl) != 2 || dl[1].Job.ID != "seven" || dl[1].Job.Attempt != 7 {
		t.Fatalf("dead letters %+v, want job seven at attempt 7", dl)
	}
}
