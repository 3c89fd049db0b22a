package server

import "sync/atomic"

type counter = atomic.Int64

// counters are the server's shared counters. The hot ones are spread out:
// processed jobs are counted per worker, acks once per batch.
type counters struct {
	acked        counter
	retried      counter
	snoozed      counter
	deadLettered counter
	settleErrors counter
	panics       counter
	abandoned    counter
	fetchErrors  counter
	fetches      counter
	extendErrors counter
	extended     counter
	cancelled    counter
	cancelChecks counter
}

// Stats counts what a server has done since it was created.
type Stats struct {
	// Processed counts handler calls that returned, whatever the outcome.
	Processed int64
	// Acked counts jobs acknowledged by the broker.
	Acked int64
	// Retried counts jobs re-enqueued as their next attempt (by job.RetryIn
	// or the retry policy).
	Retried int64
	// Snoozed counts jobs re-enqueued without spending an attempt.
	Snoozed int64
	// DeadLettered counts jobs moved to their dead-letter topic.
	DeadLettered int64
	// SettleErrors counts jobs whose outcome the broker failed to record;
	// they stay pending and are redelivered after their lease.
	SettleErrors int64
	// Panics counts handler panics the server recovered.
	Panics int64
	// Abandoned counts jobs left unsettled at shutdown: still running when
	// the shutdown timeout passed, they answered the cancellation, or had
	// not returned when their lease ended (see [Server.Run]).
	Abandoned int64
	// Fetches counts calls to the broker's Fetch; FetchErrors counts those
	// that failed. Processed/Fetches is the mean batch size.
	Fetches, FetchErrors int64
	// ExtendErrors counts failed lease renewals; Extended counts the leases
	// renewed.
	ExtendErrors, Extended int64
	// Cancelled counts jobs dead-lettered because an operator cancelled
	// them while they ran (also counted in DeadLettered); CancelChecks
	// counts the calls that asked the broker for cancel requests.
	Cancelled, CancelChecks int64
	// InFlight is the number of jobs held right now.
	InFlight int
}

// Stats returns the server's counters. It is cheap (a few atomic loads) and
// safe to call at any time, from any goroutine.
func (s *Server) Stats() Stats {
	st := Stats{
		Acked:        s.stats.acked.Load(),
		Retried:      s.stats.retried.Load(),
		Snoozed:      s.stats.snoozed.Load(),
		DeadLettered: s.stats.deadLettered.Load(),
		SettleErrors: s.stats.settleErrors.Load(),
		Panics:       s.stats.panics.Load(),
		Abandoned:    s.stats.abandoned.Load(),
		Fetches:      s.stats.fetches.Load(),
		FetchErrors:  s.stats.fetchErrors.Load(),
		ExtendErrors: s.stats.extendErrors.Load(),
		Extended:     s.stats.extended.Load(),
		Cancelled:    s.stats.cancelled.Load(),
		CancelChecks: s.stats.cancelChecks.Load(),
		InFlight:     s.inFlight(),
	}
	for _, w := range s.workers {
		st.Processed += w.n.Load()
	}
	return st
}
