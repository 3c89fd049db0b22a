package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/middleware"
	"github.com/conveyor-jobs/conveyor/retry"
)

// fakeRecorder keeps what a Recorder is told.
type fakeRecorder struct {
	mu        sync.Mutex
	counts    map[string]int // "topic/event"
	durations []string       // "topic/outcome"
}

var _ middleware.Recorder = (*fakeRecorder)(nil)

func newFakeRecorder() *fakeRecorder { return &fakeRecorder{counts: map[string]int{}} }

func (r *fakeRecorder) Count(topic string, e middleware.Event, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.counts[topic+"/"+string(e)] += n
}

func (r *fakeRecorder) ObserveDuration(topic, outcome string, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if d < 0 {
		panic("negative duration")
	}
	r.durations = append(r.durations, topic+"/"+outcome)
}

func (r *fakeRecorder) events() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for k, v := range r.counts {
		out = append(out, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(out)
	return out
}

func TestMetrics(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		events   []string
		duration string
	}{
		{"ack", nil, []string{"t/acked=1", "t/dequeued=1"}, "t/ack"},
		{"retry", job.RetryIn(time.Second, errBoom), []string{"t/dequeued=1", "t/failed=1", "t/retried=1"}, "t/retry"},
		{"snooze", job.Snooze(time.Second), []string{"t/dequeued=1", "t/snoozed=1"}, "t/snooze"},
		{"rate limited", job.SnoozeBecause(time.Second, middleware.ErrRateLimited), []string{"t/dequeued=1", "t/rate_limited=1", "t/snoozed=1"}, "t/snooze"},
		{"breaker", job.SnoozeBecause(time.Second, middleware.ErrCircuitOpen), []string{"t/breaker_rejected=1", "t/dequeued=1", "t/snoozed=1"}, "t/snooze"},
		{"dead letter", job.Permanent(errBoom), []string{"t/dead_lettered=1", "t/dequeued=1", "t/failed=1"}, "t/dead-letter"},
		{"plain failure", errBoom, []string{"t/dequeued=1", "t/failed=1"}, "t/fail"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newFakeRecorder()
			if got := run(t, middleware.Metrics(rec), func(context.Context, *job.Job) error { return tt.err }, &job.Job{Topic: "t"}); got != tt.err {
				t.Fatalf("Metrics changed the outcome: %v", got)
			}
			if got := rec.events(); !slices.Equal(got, tt.events) {
				t.Errorf("events %v, want %v", got, tt.events)
			}
			if !slices.Equal(rec.durations, []string{tt.duration}) {
				t.Errorf("durations %v, want [%s]", rec.durations, tt.duration)
			}
		})
	}
}

func TestMetricsNilRecorder(t *testing.T) {
	if err := run(t, middleware.Metrics(nil), func(context.Context, *job.Job) error { return errBoom }, &job.Job{}); err != errBoom {
		t.Fatal(err)
	}
}

// printRecorder prints what it is told, for the example.
type printRecorder struct{}

func (printRecorder) Count(topic string, e middleware.Event, n int) {
	fmt.Printf("count %s %s +%d\n", topic, e, n)
}

func (printRecorder) ObserveDuration(topic, outcome string, _ time.Duration) {
	fmt.Printf("duration %s %s\n", topic, outcome)
}

func ExampleMetrics() {
	h := job.Chain(
		middleware.Metrics(printRecorder{}),
		middleware.Retry(retry.Policy{}),
	)(job.HandlerFunc(func(context.Context, *job.Job) error {
		return errors.New("flaky")
	}))
	_ = h.ProcessJob(context.Background(), &job.Job{Topic: "embed", Attempt: 1})
	// Output:
	// count embed dequeued +1
	// count embed retried +1
	// count embed failed +1
	// duration embed retry
}
