package prometheus_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	conveyorprom "github.com/conveyor-jobs/conveyor/contrib/prometheus"
	"github.com/conveyor-jobs/conveyor/middleware"
)

// newRecorder returns a Recorder registered with a fresh registry.
func newRecorder(t testing.TB, opts *conveyorprom.RecorderOptions) (*conveyorprom.Recorder, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	rec, err := conveyorprom.NewRecorder(reg, opts)
	if err != nil {
		t.Fatalf("NewRecorder: %v", err)
	}
	return rec, reg
}

// gatherAndCompare compares the named metrics of reg with want.
func gatherAndCompare(t testing.TB, reg prometheus.Gatherer, want string, names ...string) {
	t.Helper()
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
}

func TestRecorderCounters(t *testing.T) {
	tests := []struct {
		name  string
		event middleware.Event
	}{
		{"enqueued", middleware.EventEnqueued},
		{"dequeued", middleware.EventDequeued},
		{"acked", middleware.EventAcked},
		{"retried", middleware.EventRetried},
		{"snoozed", middleware.EventSnoozed},
		{"dead_lettered", middleware.EventDeadLettered},
		{"failed", middleware.EventFailed},
		{"rate_limited", middleware.EventRateLimited},
		{"breaker_rejected", middleware.EventBreakerRejected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, reg := newRecorder(t, nil)
			rec.Count("orchestrate", tt.event, 1)
			rec.Count("orchestrate", tt.event, 2)
			rec.Count("emails", tt.event, 5)
			rec.Count("emails", tt.event, 0)  // ignored
			rec.Count("emails", tt.event, -3) // ignored: counters only go up
			name := "conveyor_jobs_" + tt.name + "_total"
			want := "# HELP " + name + " " + help(t, reg, name) + "\n" +
				"# TYPE " + name + " counter\n" +
				name + `{topic="emails"} 5` + "\n" +
				name + `{topic="orchestrate"} 3` + "\n"
			gatherAndCompare(t, reg, want, name)
		})
	}
}

// help returns the help text of metric name in reg.
func help(t testing.TB, reg prometheus.Gatherer, name string) string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetHelp()
		}
	}
	t.Fatalf("metric %s not gathered", name)
	return ""
}

func TestRecorderExposition(t *testing.T) {
	rec, reg := newRecorder(t, &conveyorprom.RecorderOptions{Buckets: []float64{0.1, 1, 10}})
	rec.Count("orchestrate", middleware.EventDequeued, 3)
	rec.Count("orchestrate", middleware.EventAcked, 2)
	rec.Count("orchestrate", middleware.EventRetried, 1)
	rec.Count("orchestrate", middleware.Event("unknown"), 7) // ignored
	rec.ObserveDuration("orchestrate", "ack", 50*time.Millisecond)
	rec.ObserveDuration("orchestrate", "ack", 2*time.Second)
	rec.ObserveDuration("orchestrate", "retry", 500*time.Millisecond)
	rec.ObserveDuration("orchestrate", "exotic", 20*time.Second) // not cached, still recorded

	const want = `
# HELP conveyor_jobs_acked_total Jobs that succeeded and were acknowledged, by topic.
# TYPE conveyor_jobs_acked_total counter
conveyor_jobs_acked_total{topic="orchestrate"} 2
# HELP conveyor_jobs_breaker_rejected_total Jobs snoozed by an open circuit breaker, by topic.
# TYPE conveyor_jobs_breaker_rejected_total counter
conveyor_jobs_breaker_rejected_total{topic="orchestrate"} 0
# HELP conveyor_jobs_dead_lettered_total Jobs moved to their dead-letter topic, by topic.
# TYPE conveyor_jobs_dead_lettered_total counter
conveyor_jobs_dead_lettered_total{topic="orchestrate"} 0
# HELP conveyor_jobs_dequeued_total Jobs fetched from the broker and handed to a worker, by topic.
# TYPE conveyor_jobs_dequeued_total counter
conveyor_jobs_dequeued_total{topic="orchestrate"} 3
# HELP conveyor_jobs_enqueued_total Jobs published, by topic.
# TYPE conveyor_jobs_enqueued_total counter
conveyor_jobs_enqueued_total{topic="orchestrate"} 0
# HELP conveyor_jobs_failed_total Handler runs that returned an error, by topic.
# TYPE conveyor_jobs_failed_total counter
conveyor_jobs_failed_total{topic="orchestrate"} 0
# HELP conveyor_jobs_rate_limited_total Jobs snoozed by the rate limiter, by topic.
# TYPE conveyor_jobs_rate_limited_total counter
conveyor_jobs_rate_limited_total{topic="orchestrate"} 0
# HELP conveyor_jobs_retried_total Jobs re-enqueued for another attempt, by topic.
# TYPE conveyor_jobs_retried_total counter
conveyor_jobs_retried_total{topic="orchestrate"} 1
# HELP conveyor_jobs_snoozed_total Jobs re-enqueued without spending an attempt, by topic.
# TYPE conveyor_jobs_snoozed_total counter
conveyor_jobs_snoozed_total{topic="orchestrate"} 0
# HELP conveyor_job_duration_seconds How long handlers ran, by topic and outcome (ack, retry, snooze, dead-letter, fail).
# TYPE conveyor_job_duration_seconds histogram
conveyor_job_duration_seconds_bucket{outcome="ack",topic="orchestrate",le="0.1"} 1
conveyor_job_duration_seconds_bucket{outcome="ack",topic="orchestrate",le="1"} 1
conveyor_job_duration_seconds_bucket{outcome="ack",topic="orchestrate",le="10"} 2
conveyor_job_duration_seconds_bucket{outcome="ack",topic="orchestrate",le="+Inf"} 2
conveyor_job_duration_seconds_sum{outcome="ack",topic="orchestrate"} 2.05
conveyor_job_duration_seconds_count{outcome="ack",topic="orchestrate"} 2
conveyor_job_duration_seconds_bucket{outcome="exotic",topic="orchestrate",le="0.1"} 0
conveyor_job_duration_seconds_bucket{outcome="exotic",topic="orchestrate",le="1"} 0
conveyor_job_duration_seconds_bucket{outcome="exotic",topic="orchestrate",le="10"} 0
conveyor_job_duration_seconds_bucket{outcome="exotic",topic="orchestrate",le="+Inf"} 1
conveyor_job_duration_seconds_sum{outcome="exotic",topic="orchestrate"} 20
conveyor_job_duration_seconds_count{outcome="exotic",topic="orchestrate"} 1
conveyor_job_duration_seconds_bucket{outcome="retry",topic="orchestrate",le="0.1"} 0
conveyor_job_duration_seconds_bucket{outcome="retry",topic="orchestrate",le="1"} 1
conveyor_job_duration_seconds_bucket{outcome="retry",topic="orchestrate",le="10"} 1
conveyor_job_duration_seconds_bucket{outcome="retry",topic="orchestrate",le="+Inf"} 1
conveyor_job_duration_seconds_sum{outcome="retry",topic="orchestrate"} 0.5
conveyor_job_duration_seconds_count{outcome="retry",topic="orchestrate"} 1
`
	gatherAndCompare(t, reg, want)
}

func TestRecorderOptions(t *testing.T) {
	rec, reg := newRecorder(t, &conveyorprom.RecorderOptions{
		Namespace:   "agents",
		ConstLabels: prometheus.Labels{"app": "pipeline"},
	})
	rec.Count("orchestrate", middleware.EventAcked, 1)
	rec.ObserveDuration("orchestrate", "ack", time.Millisecond)
	const want = `
# HELP agents_jobs_acked_total Jobs that succeeded and were acknowledged, by topic.
# TYPE agents_jobs_acked_total counter
agents_jobs_acked_total{app="pipeline",topic="orchestrate"} 1
`
	gatherAndCompare(t, reg, want, "agents_jobs_acked_total")
	if n := testutil.CollectAndCount(rec, "agents_job_duration_seconds"); n != 1 {
		t.Errorf("duration series = %d, want 1", n)
	}
	// Default buckets: 16 bounds plus +Inf.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "agents_job_duration_seconds" {
			if got := len(mf.GetMetric()[0].GetHistogram().GetBucket()); got != len(conveyorprom.DefaultBuckets) {
				t.Errorf("buckets = %d, want %d", got, len(conveyorprom.DefaultBuckets))
			}
		}
	}
}

func TestNewRecorderRegistrationConflict(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := conveyorprom.NewRecorder(reg, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := conveyorprom.NewRecorder(reg, nil); err == nil {
		t.Fatal("second NewRecorder on the same registry: want an error")
	}
	// A nil registerer registers nothing, and the recorder still collects.
	rec, err := conveyorprom.NewRecorder(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec.Count("t", middleware.EventAcked, 4)
	own := prometheus.NewRegistry()
	own.MustRegister(rec)
	const want = `
# HELP conveyor_jobs_acked_total Jobs that succeeded and were acknowledged, by topic.
# TYPE conveyor_jobs_acked_total counter
conveyor_jobs_acked_total{topic="t"} 4
`
	gatherAndCompare(t, own, want, "conveyor_jobs_acked_total")
}

func TestRecorderConcurrent(t *testing.T) {
	rec, reg := newRecorder(t, nil)
	const goroutines, per = 8, 500
	topics := []string{"a", "b", "c"}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range per {
				topic := topics[(g+i)%len(topics)]
				rec.Count(topic, middleware.EventDequeued, 1)
				rec.ObserveDuration(topic, "ack", time.Millisecond)
			}
		})
	}
	wg.Wait()
	total := 0.0
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "conveyor_jobs_dequeued_total" {
			for _, m := range mf.GetMetric() {
				total += m.GetCounter().GetValue()
			}
		}
	}
	if total != goroutines*per {
		t.Errorf("dequeued total = %v, want %d", total, goroutines*per)
	}
}

func TestRecorderHotPathDoesNotAllocate(t *testing.T) {
	rec, _ := newRecorder(t, nil)
	rec.Count("orchestrate", middleware.EventAcked, 1)
	rec.ObserveDuration("orchestrate", "ack", time.Millisecond)
	allocs := testing.AllocsPerRun(1000, func() {
		rec.Count("orchestrate", middleware.EventAcked, 1)
		rec.ObserveDuration("orchestrate", "ack", time.Millisecond)
	})
	if allocs != 0 {
		t.Errorf("allocs per Count+ObserveDuration = %v, want 0", allocs)
	}
}

func BenchmarkRecorder(b *testing.B) {
	rec, _ := newRecorder(b, nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			rec.Count("orchestrate", middleware.EventAcked, 1)
			rec.ObserveDuration("orchestrate", "ack", 3*time.Millisecond)
		}
	})
}
