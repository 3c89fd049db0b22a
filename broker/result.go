package broker

import (
	"context"
	"time"

	"github.com/conveyor-jobs/conveyor/job"
)

// The states of a job in [JobState.State].
const (
	// StateDelayed: the job waits for its due time (published with a
	// delay, retried or snoozed).
	StateDelayed = "delayed"
	// StateQueued: the job is ready and waits for a consumer.
	StateQueued = "queued"
	// StateRunning: the job was delivered and is not settled yet.
	StateRunning = "running"
	// StateSucceeded: the job was acknowledged with a result, which is kept
	// until its retention ends.
	StateSucceeded = "succeeded"
	// StateDead: the job is in its topic's dead-letter topic.
	StateDead = "dead"
)

// Progress is how far a running job has got, as its handler last reported
// it (job.Progress).
type Progress struct {
	// Fraction is in [0, 1].
	Fraction float64 `json:"fraction"`
	// Message says what the job is doing; it may be empty.
	Message string `json:"message,omitempty"`
	// At is when the job reported it.
	At time.Time `json:"at,omitzero"`
}

// ProgressUpdate is the progress of one delivery, to record.
type ProgressUpdate struct {
	// Delivery is the running job's delivery.
	Delivery *Delivery
	// Progress is its latest report.
	Progress Progress
}

// ProgressRecorder is implemented by brokers that keep the progress of
// running jobs (both brokers of conveyor). The server writes through it the
// latest progress of each job it runs, at most once a second per job.
type ProgressRecorder interface {
	// RecordProgress stores the progress of each update's delivery,
	// replacing what was stored for it, in one round trip to the store.
	// The progress of a delivery lives while the delivery runs: it is not
	// reported once the job is settled, and a broker may let it expire
	// when no update renews it for a while.
	RecordProgress(ctx context.Context, us ...ProgressUpdate) error
}

// ProgressReader is implemented by brokers that report the progress of
// running jobs by receipt (both brokers of conveyor), for a view of the
// pending entries ([PendingLister]).
type ProgressReader interface {
	// ProgressOf returns the progress recorded for the deliveries of topic
	// with the given receipts ([PendingEntry.ID]), by receipt; receipts
	// with none are left out. One round trip to the store.
	ProgressOf(ctx context.Context, topic string, receipts []string) (map[string]Progress, error)
}

// JobState describes one job found by its ID: where it is and, once it
// succeeded, its result.
type JobState struct {
	// ID is the job's ID.
	ID string `json:"id"`
	// Topic is the topic the job was looked up in.
	Topic string `json:"topic"`
	// State is one of StateDelayed, StateQueued, StateRunning,
	// StateSucceeded and StateDead.
	State string `json:"state"`
	// Attempt is the job's attempt: the one running or succeeded, the next
	// one of a queued or delayed job, the last one of a dead job.
	Attempt int `json:"attempt"`
	// Receipt is the receipt of the job's delivery or stored entry (the
	// stream entry ID on Redis); "" for a succeeded job.
	Receipt string `json:"receipt,omitempty"`
	// Result is the result the job's handler recorded (job.SetResult), for
	// a succeeded job; nil otherwise.
	Result []byte `json:"result,omitempty"`
	// Progress is the latest progress a running job reported; nil when it
	// reported none, and for jobs in other states.
	Progress *Progress `json:"progress,omitempty"`
	// Failure is the job's last failure: why a dead job is dead, or why a
	// delayed job is being retried; nil when it has not failed.
	Failure *job.Failure `json:"failure,omitempty"`
	// EnqueuedAt is when the job was first enqueued (zero when unknown).
	EnqueuedAt time.Time `json:"enqueued_at,omitzero"`
	// Due is when a delayed job becomes ready; zero otherwise.
	Due time.Time `json:"due,omitzero"`
	// FinishedAt is when a succeeded job was acknowledged, or when a dead
	// job failed; zero otherwise.
	FinishedAt time.Time `json:"finished_at,omitzero"`
	// ExpiresAt is when a succeeded job's result is deleted; zero
	// otherwise.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// JobReader is implemented by brokers that find a job by ID and report its
// state and result (both brokers of conveyor).
//
// A job acknowledged without a result is not kept: once settled, only jobs
// that recorded a result (job.SetResult) are found, until their retention
// ends, and dead letters, until they are replayed or purged.
type JobReader interface {
	// JobState returns the state of the job of topic with ID id. It returns
	// an error wrapping [ErrNotFound] when the broker holds no such job:
	// never published, acknowledged without a result, its result expired,
	// or its dead letter purged.
	JobState(ctx context.Context, topic, id string) (*JobState, error)
}
