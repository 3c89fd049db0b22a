package middleware_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/middleware"
)

type nopRecorder struct{}

func (nopRecorder) Count(string, middleware.Event, int)           {}
func (nopRecorder) ObserveDuration(string, string, time.Duration) {}

// BenchmarkDefault measures the recommended stack's overhead per job: logging
// at Warn (acks not written), metrics into a no-op recorder, dead-letter,
// retry, a rate limit that never binds, a breaker that never trips, a timeout
// and recover. "retry" is a failing handler: the Warn record is formatted.
// "ack-no-timeout" sets no deadline: the difference with "ack" is the cost
// of a context with a deadline per job (context.WithTimeout's timer).
func BenchmarkDefault(b *testing.B) {
	for _, tc := range []struct {
		name    string
		err     error
		timeout time.Duration
	}{{"ack", nil, time.Minute}, {"retry", errBoom, time.Minute}, {"ack-no-timeout", nil, 0}} {
		b.Run(tc.name, func(b *testing.B) {
			h := middleware.Default(&middleware.DefaultOptions{
				Logger:    slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn})),
				Recorder:  nopRecorder{},
				RateLimit: &middleware.RateLimitOptions{Limit: middleware.PerSecond(1e12, 1e9)},
				Breakers: middleware.NewBreakers(&middleware.BreakerOptions{Logger: quietLogger,
					Settings: gobreaker.Settings{ReadyToTrip: func(gobreaker.Counts) bool { return false }}}),
				Timeout: tc.timeout,
			})(job.HandlerFunc(func(context.Context, *job.Job) error { return tc.err }))
			j := &job.Job{ID: "1", Topic: "t", Attempt: 1}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				_ = h.ProcessJob(ctx, j)
			}
		})
	}
}

// BenchmarkMemoryStoreAllow takes tokens from 10,000 tenants' buckets.
func BenchmarkMemoryStoreAllow(b *testing.B) {
	s := middleware.NewMemoryStore(nil)
	keys := make([]string, 10_000)
	for i := range keys {
		keys[i] = fmt.Sprint("tenant-", i)
	}
	ctx, now, limit := context.Background(), time.Now(), middleware.PerSecond(100, 10)
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		_, _, _ = s.Allow(ctx, keys[i%len(keys)], limit, now)
		i++
	}
}
