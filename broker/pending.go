package broker

import (
	"context"
	"encoding/json"
	"time"

	"github.com/conveyor-jobs/conveyor/job"
)

// DefaultListLimit is how many entries [PendingLister.PendingEntries] and
// [DelayedLister.DelayedJobs] return when their limit is zero or negative.
const DefaultListLimit = 100

// PendingEntry is a delivered, unsettled job of a topic: one leased to a
// consumer (or, on the Redis broker, whose lease expired and which no
// consumer has claimed yet). Its JSON form gives Idle in seconds, as a
// number named "idle_seconds".
type PendingEntry struct {
	// ID is the delivery's receipt ([Delivery.Receipt]; the stream entry
	// ID on the Redis broker).
	ID string `json:"id"`
	// Consumer holds the lease.
	Consumer string `json:"consumer"`
	// Idle is the time since the entry was last delivered or its lease
	// extended; in JSON, "idle_seconds", a number of seconds.
	Idle time.Duration `json:"-"`
	// Deliveries counts deliveries of this entry: 1 for a first delivery,
	// more after lost leases. A retry or snooze makes a new entry.
	Deliveries int64 `json:"deliveries"`
}

// pendingEntryJSON is the JSON form of PendingEntry.
type pendingEntryJSON struct {
	ID          string  `json:"id"`
	Consumer    string  `json:"consumer"`
	IdleSeconds float64 `json:"idle_seconds"`
	Deliveries  int64   `json:"deliveries"`
}

// MarshalJSON encodes p with Idle as "idle_seconds", a number of seconds,
// like every duration in conveyor's JSON.
func (p PendingEntry) MarshalJSON() ([]byte, error) {
	return json.Marshal(pendingEntryJSON{p.ID, p.Consumer, p.Idle.Seconds(), p.Deliveries})
}

// UnmarshalJSON decodes what MarshalJSON encodes.
func (p *PendingEntry) UnmarshalJSON(data []byte) error {
	var v pendingEntryJSON
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	*p = PendingEntry{ID: v.ID, Consumer: v.Consumer, Idle: time.Duration(v.IdleSeconds * float64(time.Second)), Deliveries: v.Deliveries}
	return nil
}

// PendingLister is implemented by brokers that list the delivered,
// unsettled jobs of a topic (both brokers of conveyor).
type PendingLister interface {
	// PendingEntries lists up to limit ([DefaultListLimit] when limit <= 0)
	// pending entries of topic, oldest entry first (in receipt order, as
	// published or re-enqueued). A topic with none, or never used, has an
	// empty list and no error.
	PendingEntries(ctx context.Context, topic string, limit int) ([]PendingEntry, error)
}

// DelayedJob is a job waiting for its due time: published with a delay,
// retried or snoozed.
type DelayedJob struct {
	// Job is the job as it will be delivered (Attempt included).
	Job job.Job `json:"job"`
	// Due is when it becomes ready.
	Due time.Time `json:"due"`
	// Snooze describes the snooze that put the job there, when it was
	// snoozed through [SnoozeRecorder.SnoozeBecause]; nil for a retry, a
	// job published with a delay, or a snooze that recorded nothing (a
	// plain [Broker.Snooze]).
	Snooze *Snooze `json:"snooze,omitempty"`
}

// Snooze records why and when a job was snoozed.
type Snooze struct {
	// Cause is the text of the snooze's cause, such as "conveyor: circuit
	// open" or "conveyor: rate limited"; "" when none was given.
	Cause string `json:"cause"`
	// At is when the job was snoozed.
	At time.Time `json:"at"`
}

// DelayedLister is implemented by brokers that list the delayed jobs of a
// topic (both brokers of conveyor).
type DelayedLister interface {
	// DelayedJobs lists up to limit ([DefaultListLimit] when limit <= 0)
	// delayed jobs of topic, soonest due first. A topic with none, or never
	// used, has an empty list and no error.
	DelayedJobs(ctx context.Context, topic string, limit int) ([]DelayedJob, error)
}

// DelayedDeleter is implemented by brokers that delete a delayed job before
// it is due (both brokers of conveyor).
type DelayedDeleter interface {
	// DeleteDelayed removes the delayed job of topic whose job ID is id, or
	// returns an error wrapping [ErrNotFound] when topic has no delayed job
	// with that ID.
	DeleteDelayed(ctx context.Context, topic, id string) error
}
