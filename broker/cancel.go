package broker

import (
	"context"
	"fmt"
	"time"

	"github.com/conveyor-jobs/conveyor/job"
)

// CancelResult says what a [Canceller] did with the job it was asked to
// cancel.
type CancelResult int

// The results of [Canceller.Cancel].
const (
	// CancelledQueued: the job was waiting in its topic's stream; it was
	// removed and dead-lettered with reason job.ReasonCancelled.
	CancelledQueued CancelResult = iota + 1
	// CancelledDelayed: the job was waiting for its due time (delayed,
	// retried or snoozed); it was removed and dead-lettered with reason
	// job.ReasonCancelled.
	CancelledDelayed
	// CancelRequested: the job is running (delivered and not settled). A
	// cancel request was recorded; the server running the job ends its
	// handler's context (within its CancelInterval, 1s by default) and
	// dead-letters the job with reason job.ReasonCancelled when the
	// handler returns, unless the handler returns nil.
	CancelRequested
)

// String returns "queued", "delayed" or "running".
func (r CancelResult) String() string {
	switch r {
	case CancelledQueued:
		return "queued"
	case CancelledDelayed:
		return "delayed"
	case CancelRequested:
		return "running"
	}
	return fmt.Sprintf("CancelResult(%d)", int(r))
}

// Canceller is implemented by brokers whose jobs can be cancelled by ID.
//
// A cancelled job never vanishes: a queued or delayed one is moved to its
// dead-letter topic with reason job.ReasonCancelled at once, in one atomic
// step; for a running one a cancel request is recorded, which the server
// holding the job sees through [CancelWatcher].
type Canceller interface {
	// Cancel cancels the job of topic with job ID id. It returns an error
	// wrapping [ErrNotFound] when the broker holds no such job (it never
	// existed, was settled already, or is a dead letter).
	Cancel(ctx context.Context, topic, id string) (CancelResult, error)
}

// CancelWatcher is implemented by brokers that record cancel requests for
// running jobs (see [CancelRequested]). The server asks it, about once a
// second and only while it holds jobs, which of its deliveries to cancel.
type CancelWatcher interface {
	// CancelRequested returns the receipts of the deliveries among ds whose
	// job an operator asked to cancel, in one round trip to the store.
	CancelRequested(ctx context.Context, ds ...*Delivery) ([]string, error)
}

// CancelFailure returns the failure a broker records with a job of topic it
// cancelled at time at while the job waited (res is CancelledQueued or
// CancelledDelayed): reason job.ReasonCancelled, error "conveyor: job
// cancelled while queued" (or "while delayed").
func CancelFailure(topic string, res CancelResult, at time.Time) job.Failure {
	return job.Failure{Error: "conveyor: job cancelled while " + res.String(), Reason: job.ReasonCancelled, Origin: topic, At: at}
}
