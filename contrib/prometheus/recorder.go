package prometheus

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/middleware"
)

// DefaultBuckets are the processing-duration histogram's default bucket
// bounds, in seconds: from 5 ms to 10 minutes, since jobs range from quick
// lookups to long model calls.
var DefaultBuckets = []float64{
	0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600,
}

// RecorderOptions configures a [Recorder]. A nil *RecorderOptions means all
// defaults.
type RecorderOptions struct {
	// Namespace prefixes every metric name. Empty means "conveyor".
	Namespace string
	// Buckets are the duration histogram's upper bounds in seconds. Nil means
	// [DefaultBuckets].
	Buckets []float64
	// ConstLabels are added to every metric (an instance or app name, say).
	ConstLabels prometheus.Labels
}

// events lists the counted events in the order of Recorder.counters.
var events = [...]middleware.Event{
	middleware.EventEnqueued,
	middleware.EventDequeued,
	middleware.EventAcked,
	middleware.EventRetried,
	middleware.EventSnoozed,
	middleware.EventDeadLettered,
	middleware.EventFailed,
	middleware.EventRateLimited,
	middleware.EventBreakerRejected,
}

// eventHelp documents each counter, in the order of events.
var eventHelp = [...]string{
	"Jobs published, by topic.",
	"Jobs fetched from the broker and handed to a worker, by topic.",
	"Jobs that succeeded and were acknowledged, by topic.",
	"Jobs re-enqueued for another attempt, by topic.",
	"Jobs re-enqueued without spending an attempt, by topic.",
	"Jobs moved to their dead-letter topic, by topic.",
	"Handler runs that returned an error, by topic.",
	"Jobs snoozed by the rate limiter, by topic.",
	"Jobs snoozed by an open circuit breaker, by topic.",
}

// eventIndex returns e's index in events, or -1.
func eventIndex(e middleware.Event) int {
	switch e {
	case middleware.EventEnqueued:
		return 0
	case middleware.EventDequeued:
		return 1
	case middleware.EventAcked:
		return 2
	case middleware.EventRetried:
		return 3
	case middleware.EventSnoozed:
		return 4
	case middleware.EventDeadLettered:
		return 5
	case middleware.EventFailed:
		return 6
	case middleware.EventRateLimited:
		return 7
	case middleware.EventBreakerRejected:
		return 8
	}
	return -1
}

// numOutcomes is the number of job.Outcome values.
const numOutcomes = int(job.OutcomeDeadLetter) + 1

// outcomeIndex returns the job.Outcome whose String is s, or -1.
func outcomeIndex(s string) int {
	switch s {
	case "ack":
		return int(job.OutcomeAck)
	case "fail":
		return int(job.OutcomeFail)
	case "retry":
		return int(job.OutcomeRetry)
	case "snooze":
		return int(job.OutcomeSnooze)
	case "dead-letter":
		return int(job.OutcomeDeadLetter)
	}
	return -1
}

// Recorder is a [middleware.Recorder] that exports job counters and a
// processing-duration histogram to Prometheus:
//
//	conveyor_jobs_enqueued_total{topic}
//	conveyor_jobs_dequeued_total{topic}
//	conveyor_jobs_acked_total{topic}
//	conveyor_jobs_retried_total{topic}
//	conveyor_jobs_snoozed_total{topic}
//	conveyor_jobs_dead_lettered_total{topic}
//	conveyor_jobs_failed_total{topic}
//	conveyor_jobs_rate_limited_total{topic}
//	conveyor_jobs_breaker_rejected_total{topic}
//	conveyor_job_duration_seconds{topic,outcome}
//
// Each event has its own counter, rather than one counter with an event
// label, because the events do not add up to anything meaningful (an acked
// job was also dequeued). All counters of a topic start at zero the first time
// the topic is seen, so rate() works from the first event.
//
// A Recorder is safe for concurrent use. Count and ObserveDuration do not
// allocate once a topic has been seen: the per-topic metrics are cached in a
// copy-on-write map read without locks.
type Recorder struct {
	counters [len(events)]*prometheus.CounterVec
	duration *prometheus.HistogramVec

	mu     sync.Mutex // serialises writers of topics
	topics atomic.Pointer[map[string]*topicMetrics]
}

// topicMetrics caches one topic's metric children.
type topicMetrics struct {
	counters [len(events)]prometheus.Counter
	// outcomes holds the duration histograms of the known outcomes, created
	// on first observation so that a topic exports only outcomes it had.
	outcomes [numOutcomes]atomic.Pointer[observer]
}

type observer struct{ prometheus.Observer }

var (
	_ middleware.Recorder  = (*Recorder)(nil)
	_ prometheus.Collector = (*Recorder)(nil)
)

// NewRecorder returns a Recorder and registers it with reg, unless reg is
// nil (register it yourself then: a Recorder is a [prometheus.Collector]).
// It fails when reg already holds metrics of the same names.
func NewRecorder(reg prometheus.Registerer, opts *RecorderOptions) (*Recorder, error) {
	if opts == nil {
		opts = &RecorderOptions{}
	}
	ns := opts.Namespace
	if ns == "" {
		ns = "conveyor"
	}
	buckets := opts.Buckets
	if buckets == nil {
		buckets = DefaultBuckets
	}
	r := &Recorder{}
	for i, e := range events {
		r.counters[i] = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace:   ns,
			Subsystem:   "jobs",
			Name:        string(e) + "_total",
			Help:        eventHelp[i],
			ConstLabels: opts.ConstLabels,
		}, []string{"topic"})
	}
	r.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace:   ns,
		Subsystem:   "job",
		Name:        "duration_seconds",
		Help:        "How long handlers ran, by topic and outcome (ack, retry, snooze, dead-letter, fail).",
		Buckets:     buckets,
		ConstLabels: opts.ConstLabels,
	}, []string{"topic", "outcome"})
	empty := map[string]*topicMetrics{}
	r.topics.Store(&empty)
	if reg != nil {
		if err := reg.Register(r); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Count adds n to the counter of event e for topic. Unknown events and n <= 0
// are ignored.
func (r *Recorder) Count(topic string, e middleware.Event, n int) {
	i := eventIndex(e)
	if i < 0 || n <= 0 {
		return
	}
	r.topic(topic).counters[i].Add(float64(n))
}

// ObserveDuration records that a handler for topic ran for d and returned
// outcome.
func (r *Recorder) ObserveDuration(topic string, outcome string, d time.Duration) {
	i := outcomeIndex(outcome)
	if i < 0 {
		// Not one of job.Outcome's names: rare, so no cache.
		r.duration.WithLabelValues(topic, outcome).Observe(d.Seconds())
		return
	}
	tm := r.topic(topic)
	o := tm.outcomes[i].Load()
	if o == nil {
		o = &observer{r.duration.WithLabelValues(topic, outcome)}
		// Losing this race is harmless: WithLabelValues returns the same child.
		tm.outcomes[i].CompareAndSwap(nil, o)
	}
	o.Observe(d.Seconds())
}

// topic returns the cached metrics of topic, creating them the first time.
func (r *Recorder) topic(topic string) *topicMetrics {
	if tm, ok := (*r.topics.Load())[topic]; ok {
		return tm
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	old := *r.topics.Load()
	if tm, ok := old[topic]; ok {
		return tm
	}
	tm := &topicMetrics{}
	for i, c := range r.counters {
		tm.counters[i] = c.WithLabelValues(topic)
	}
	m := make(map[string]*topicMetrics, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[topic] = tm
	r.topics.Store(&m)
	return tm
}

// Describe sends the descriptors of r's metrics to ch.
func (r *Recorder) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range r.counters {
		c.Describe(ch)
	}
	r.duration.Describe(ch)
}

// Collect sends r's metrics to ch.
func (r *Recorder) Collect(ch chan<- prometheus.Metric) {
	for _, c := range r.counters {
		c.Collect(ch)
	}
	r.duration.Collect(ch)
}
