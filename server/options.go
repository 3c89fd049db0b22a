package server

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/conveyor-jobs/conveyor/retry"
)

// Defaults applied to the zero fields of [Options].
const (
	// DefaultConcurrency is the default number of workers.
	DefaultConcurrency = 10
	// DefaultShutdownTimeout is how long Run waits for in-flight jobs by
	// default.
	DefaultShutdownTimeout = 30 * time.Second
	// DefaultAckBatch is the default most deliveries per Ack call.
	DefaultAckBatch = 64
	// DefaultAckInterval is the default AckInterval: zero, each
	// acknowledgement is sent as soon as the acker is free.
	DefaultAckInterval time.Duration = 0
	// DefaultErrorBackoffInitial is the default first wait after a failed
	// fetch.
	DefaultErrorBackoffInitial = 100 * time.Millisecond
	// DefaultErrorBackoffMax is the default longest wait between failed
	// fetches.
	DefaultErrorBackoffMax = 5 * time.Second
)

// Options configures a [Server]. A nil *Options, and every zero field, means
// the documented default. Negative durations and counts are errors.
type Options struct {
	// Concurrency is the number of jobs processed at once: the number of
	// worker goroutines, and the most deliveries the server holds. Default
	// 10.
	Concurrency int
	// Topics to fetch. When empty, the server reads them from the handler if
	// it has a Topics() []string method, as [job.Mux] does.
	Topics []string
	// Priorities weighs the topics against each other, by topic name; a
	// topic absent or 0 weighs 1. While every topic has a backlog, the
	// jobs fetched follow the weights: {"critical": 6, "default": 3,
	// "low": 1} processes 60 %, 30 % and 10 %, whatever Concurrency. A
	// topic with nothing ready leaves its share to the others. Every
	// topic named must be one the server fetches; weights must not be
	// negative. Nil fetches the topics in turn, each topic with jobs
	// getting an equal part of every fetch. Priorities need a broker that
	// is a broker.PriorityFetcher (both of conveyor's are); with another,
	// the server logs a warning at start and fetches in turn.
	Priorities map[string]int
	// StrictPriority makes Priorities an order: a topic's jobs are fetched
	// only when every topic of higher weight has none ready (topics of
	// equal weight in name order). A lower topic may wait indefinitely
	// under a steady higher backlog.
	StrictPriority bool
	// ShutdownTimeout is how long Run waits for in-flight jobs once its
	// context ends, before cancelling their context and no longer renewing
	// their leases. Outcomes returned before a lease ends are still
	// settled; Run waits at most until the last lease ends (see
	// [Server.Run]). Default 30s.
	ShutdownTimeout time.Duration
	// HeartbeatInterval is how often the server renews the leases of the
	// jobs it holds, with one batched Extend call. Default: the broker's
	// Lease()/3.
	HeartbeatInterval time.Duration
	// Retry decides what happens to a job whose handler returned a plain
	// error (not an outcome such as job.RetryIn or job.Permanent), honouring
	// the job's own MaxAttempts. Nil means the default retry.Policy: 4
	// attempts, 5s, 15s, 60s apart (±10%), then the dead-letter topic.
	//
	// When the handler chain has the retry middleware (middleware.Retry,
	// part of middleware.Default), the middleware decides every failure and
	// this policy is never consulted: configure the middleware's policy
	// instead. A server whose Retry is set logs a warning the first time it
	// sees an outcome the middleware decided.
	Retry *retry.Policy
	// Logger receives the server's own lines: start and stop, fetch outages
	// and recoveries, settle failures, handler panics. Default
	// slog.Default(); pass slog.New(slog.DiscardHandler) to silence it.
	// Per-job logging belongs to the logging middleware.
	Logger *slog.Logger
	// ErrorBackoff bounds the wait between failed fetches. Default 100ms
	// doubling up to 5s.
	ErrorBackoff Backoff
	// AckBatch is the most deliveries acknowledged in one broker call.
	// Default 64. When 4×AckBatch acknowledgements are waiting (the broker
	// is slow), workers wait for them before taking more jobs.
	AckBatch int
	// AckInterval, when positive, is the longest an acknowledgement waits
	// for its batch to fill before it is sent: fewer Ack calls at low
	// rates, for that much more latency. Default 0: acknowledgements are
	// sent as soon as the acker is free, and those that arrive during an
	// Ack call go together in the next one, so batches fill under load
	// without a timer.
	AckInterval time.Duration
	// CancelInterval is how often the server asks a broker that records
	// cancel requests (broker.CancelWatcher) which of the jobs it holds an
	// operator cancelled: one call while it holds jobs, none while it
	// holds none. A cancelled job's context ends within about this time.
	// Default 1s.
	CancelInterval time.Duration
}

// Backoff is an exponential backoff: Initial, doubling on each consecutive
// failure, capped at Max.
type Backoff struct {
	// Initial is the first wait. Default 100ms.
	Initial time.Duration
	// Max caps the wait. Default 5s (or Initial, if it is larger).
	Max time.Duration
}

// delay returns the wait after n consecutive failures (n >= 1).
func (b Backoff) delay(n int) time.Duration {
	d := b.Initial
	for i := 1; i < n && d < b.Max; i++ {
		d *= 2
	}
	return min(d, b.Max)
}

// retryPolicy returns the policy for plain errors, defaults filled in, and
// whether it was given.
func (o *Options) retryPolicy() (retry.Policy, bool) {
	if o.Retry == nil {
		return retry.Policy{}.WithDefaults(), false
	}
	return o.Retry.WithDefaults(), true
}

// ErrInvalidOptions is matched by the errors [New] returns for bad options.
var ErrInvalidOptions = errors.New("conveyor: invalid server options")

// withDefaults validates o and returns a copy with defaults filled in.
func (o *Options) withDefaults(lease time.Duration) (Options, error) {
	var c Options
	if o != nil {
		c = *o
	}
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"Concurrency", int64(c.Concurrency)},
		{"ShutdownTimeout", int64(c.ShutdownTimeout)},
		{"HeartbeatInterval", int64(c.HeartbeatInterval)},
		{"ErrorBackoff.Initial", int64(c.ErrorBackoff.Initial)},
		{"ErrorBackoff.Max", int64(c.ErrorBackoff.Max)},
		{"AckBatch", int64(c.AckBatch)},
		{"AckInterval", int64(c.AckInterval)},
		{"CancelInterval", int64(c.CancelInterval)},
	} {
		if f.v < 0 {
			return c, fmt.Errorf("%w: %s is negative", ErrInvalidOptions, f.name)
		}
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = lease / 3
	}
	if lease > 0 && c.HeartbeatInterval >= lease {
		return c, fmt.Errorf("%w: HeartbeatInterval %v is not below the broker's lease %v: long jobs would lose their lease and run twice; use at most a third of the lease",
			ErrInvalidOptions, c.HeartbeatInterval, lease)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.ErrorBackoff.Initial == 0 {
		c.ErrorBackoff.Initial = DefaultErrorBackoffInitial
	}
	if c.ErrorBackoff.Max == 0 {
		c.ErrorBackoff.Max = max(DefaultErrorBackoffMax, c.ErrorBackoff.Initial)
	}
	if c.ErrorBackoff.Max < c.ErrorBackoff.Initial {
		return c, fmt.Errorf("%w: ErrorBackoff.Max %v is below ErrorBackoff.Initial %v",
			ErrInvalidOptions, c.ErrorBackoff.Max, c.ErrorBackoff.Initial)
	}
	if c.AckBatch == 0 {
		c.AckBatch = DefaultAckBatch
	}
	if c.CancelInterval == 0 {
		c.CancelInterval = DefaultCancelInterval
	}
	return c, nil
}
