package middleware

import (
	"errors"
	"time"
)

// Event is a countable thing that happens to jobs.
type Event string

// The events a [Recorder] counts.
const (
	EventEnqueued        Event = "enqueued"
	EventDequeued        Event = "dequeued"
	EventAcked           Event = "acked"
	EventRetried         Event = "retried"
	EventSnoozed         Event = "snoozed"
	EventDeadLettered    Event = "dead_lettered"
	EventFailed          Event = "failed"
	EventRateLimited     Event = "rate_limited"
	EventBreakerRejected Event = "breaker_rejected"
)

// Recorder receives job metrics. contrib/prometheus implements it; any
// implementation must be safe for concurrent use and cheap, since it is called
// on the hot path.
type Recorder interface {
	// Count adds n to the counter of event e for topic.
	Count(topic string, e Event, n int)
	// ObserveDuration records how long a handler ran and the outcome it
	// returned ("ack", "retry", "snooze", "dead-letter" or "fail").
	ObserveDuration(topic string, outcome string, d time.Duration)
}

// Causes carried by the snoozes that rate limiting and circuit breaking
// return, so that outer middleware (metrics, logging) can tell them apart.
var (
	// ErrRateLimited is the cause of a snooze by the rate limiter.
	ErrRateLimited = errors.New("conveyor: rate limited")
	// ErrCircuitOpen is the cause of a snooze by an open circuit breaker.
	ErrCircuitOpen = errors.New("conveyor: circuit open")
)
