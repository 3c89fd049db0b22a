// Package broker defines the contract between conveyor's server and the
// stores that hold jobs: the [Broker] interface, [Delivery], [Message],
// optional powers found by type assertion ([Inspector], [DeadLetterAdmin],
// [PendingLister], [DelayedLister], [DelayedDeleter], [Trimmer],
// [TrimDryRunner], [PriorityFetcher], [Pauser]), the [Publisher] side
// that producers need, producer-side middleware ([Producer]) and typed
// publishing ([TypedPublisher]).
//
// Every implementation passes the conformance suite in broker/brokertest.
// Implementations: broker/memory (in process) and broker/redis (Redis
// Streams).
package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/conveyor-jobs/conveyor/job"
)

// Sentinel errors shared by all brokers; match them with [errors.Is].
var (
	// ErrClosed is returned by every method of a closed broker, and by a
	// Fetch that Close interrupted.
	ErrClosed = errors.New("conveyor: broker closed")
	// ErrNotFound is returned for an ID the broker does not hold.
	ErrNotFound = errors.New("conveyor: not found")
	// ErrInvalidMessage is returned by Publish for a message it cannot store
	// (an empty topic, say).
	ErrInvalidMessage = errors.New("conveyor: invalid message")
	// ErrDuplicate is matched by the error of a Publish whose message has a
	// [Message.UniqueKey] that another job holds, and of a replay of a dead
	// letter whose key another job took meanwhile. The error is a
	// *[DuplicateError] naming the holder; nothing was enqueued.
	ErrDuplicate = errors.New("conveyor: duplicate unique key")
)

// DuplicateError reports a unique key held by another job. It matches
// [ErrDuplicate]. Publish returns the holder's ID along with it.
type DuplicateError struct {
	// Topic is the topic whose key is held.
	Topic string
	// Key is the unique key.
	Key string
	// ID is the ID of the job that holds the key: the existing job.
	ID string
}

// Error names the key and the job that holds it.
func (e *DuplicateError) Error() string {
	return fmt.Sprintf("conveyor: duplicate unique key %q of topic %q: held by job %s", e.Key, e.Topic, e.ID)
}

// Is reports whether target is [ErrDuplicate].
func (e *DuplicateError) Is(target error) bool { return target == ErrDuplicate }

// BatchError is the error of a PublishBatch that did not enqueue all of
// its messages: some were not confirmed by the store (Failed), or were
// refused as duplicates of a job holding their unique key (Duplicates).
//
// The IDs PublishBatch returns with it hold "" at the indexes in Failed and
// the holder's ID at the indexes in Duplicates. The other messages were
// certainly enqueued. A message in Duplicates certainly was not. A message
// in Failed may have been, when the store's reply was lost rather than
// refused, so a producer that publishes the failed ones again should give
// them IDs (Message.ID) or unique keys its consumers can deduplicate on.
type BatchError struct {
	// Failed lists the indexes, in the batch, of the messages not confirmed.
	Failed []int
	// Duplicates lists the indexes, in the batch, of the messages not
	// enqueued because another job holds their unique key (a job enqueued
	// earlier, or earlier in the same batch).
	Duplicates []int
	// Err is the first error the store returned or, when Failed is empty,
	// the first duplicate's *[DuplicateError].
	Err error
}

// Error says how many messages were not enqueued, and why.
func (e *BatchError) Error() string {
	switch {
	case len(e.Duplicates) == 0:
		return fmt.Sprintf("conveyor: %d of the batch's messages not confirmed (indexes %v): %v", len(e.Failed), e.Failed, e.Err)
	case len(e.Failed) == 0:
		return fmt.Sprintf("conveyor: %d of the batch's messages are duplicates, not enqueued (indexes %v): %v", len(e.Duplicates), e.Duplicates, e.Err)
	}
	return fmt.Sprintf("conveyor: %d of the batch's messages not confirmed (indexes %v) and %d duplicates, not enqueued (indexes %v): %v",
		len(e.Failed), e.Failed, len(e.Duplicates), e.Duplicates, e.Err)
}

// Unwrap returns Err.
func (e *BatchError) Unwrap() error { return e.Err }

// Is reports whether target is [ErrDuplicate] and the batch had a
// duplicate.
func (e *BatchError) Is(target error) bool {
	return target == ErrDuplicate && len(e.Duplicates) > 0
}

// Message is a job to publish.
type Message struct {
	// Topic to publish to. Required.
	Topic string
	// Payload is the job's body.
	Payload []byte
	// ID is optional; the broker generates one when empty.
	ID string
	// Headers are optional metadata carried with the job.
	Headers map[string]string
	// ProcessAt delays the job until this time. Zero means now, unless Delay
	// is set.
	ProcessAt time.Time
	// Delay delays the job by this much from publication; it is ignored when
	// ProcessAt is set.
	Delay time.Duration
	// MaxAttempts is the number of attempts this job gets, the first
	// included; the retry policy (retry middleware or server) applies it
	// instead of its own. Zero means the policy decides; at most
	// job.MaxAttempt.
	MaxAttempts int
	// Timeout bounds each run of this job's handler; the timeout
	// middleware applies it instead of its own deadline. Zero means the
	// middleware decides; at most MaxTimeout. Brokers keep it to the
	// millisecond, rounding up.
	Timeout time.Duration
	// UniqueKey, when set, makes the job unique in its topic: while a job
	// with this key is delayed, queued, running or waiting to retry (and,
	// with UniqueFor, for a while after it succeeded), publishing another
	// with the same key enqueues nothing and returns the existing job's ID
	// with a *[DuplicateError]. The key is released when the job is acked
	// (see UniqueFor) or dead-lettered. Empty means not unique.
	UniqueKey string
	// UniqueFor keeps the key held after the job is acked, until UniqueFor
	// after the job was first enqueued (its EnqueuedAt): "at most once per
	// UniqueFor". Zero releases the key at the ack. It requires UniqueKey;
	// at most MaxUniqueFor. Brokers keep it to the millisecond, rounding up.
	UniqueFor time.Duration
	// Key is the job's ordering key, such as a tenant or conversation ID.
	// On a topic split into partitions (see [Partitioner]) every job with
	// one key goes to the same partition, so jobs with one key are fetched
	// in the order they were published; jobs without a key are spread over
	// the partitions. It travels with the job ([job.Job.Key]). At most
	// MaxKeyLen bytes.
	Key string
}

// MaxKeyLen bounds the length of [Message.Key].
const MaxKeyLen = 1024

// MaxTimeout bounds [Message.Timeout].
const MaxTimeout = 7 * 24 * time.Hour

// MaxUniqueFor bounds [Message.UniqueFor].
const MaxUniqueFor = 366 * 24 * time.Hour

// CheckLimits returns an error wrapping [ErrInvalidMessage] when m's
// MaxAttempts, Timeout or UniqueFor is negative or above its bound, or
// UniqueFor is set without UniqueKey. Brokers call it on every message they
// publish.
func (m *Message) CheckLimits() error {
	if m.MaxAttempts < 0 || m.MaxAttempts > job.MaxAttempt {
		return fmt.Errorf("%w: MaxAttempts %d is not between 0 and %d", ErrInvalidMessage, m.MaxAttempts, job.MaxAttempt)
	}
	if m.Timeout < 0 || m.Timeout > MaxTimeout {
		return fmt.Errorf("%w: Timeout %v is not between 0 and %v", ErrInvalidMessage, m.Timeout, MaxTimeout)
	}
	if m.UniqueFor < 0 || m.UniqueFor > MaxUniqueFor {
		return fmt.Errorf("%w: UniqueFor %v is not between 0 and %v", ErrInvalidMessage, m.UniqueFor, MaxUniqueFor)
	}
	if len(m.Key) > MaxKeyLen {
		return fmt.Errorf("%w: Key is %d bytes, more than %d", ErrInvalidMessage, len(m.Key), MaxKeyLen)
	}
	if m.UniqueFor > 0 && m.UniqueKey == "" {
		return fmt.Errorf("%w: UniqueFor %v without a UniqueKey", ErrInvalidMessage, m.UniqueFor)
	}
	return nil
}

// Due returns when m becomes ready, given the time of publication.
func (m *Message) Due(now time.Time) time.Time {
	if !m.ProcessAt.IsZero() {
		return m.ProcessAt
	}
	if m.Delay > 0 {
		return now.Add(m.Delay)
	}
	return now
}

// AddAttempts returns attempt + n bounded to [1, job.MaxAttempt], without
// overflow whatever the arguments: the attempt of a job redelivered n
// times, or retried (n = 1). Brokers use it for every attempt they compute.
func AddAttempts(attempt int, n int64) int {
	a := int64(min(max(attempt, 1), job.MaxAttempt))
	n = min(max(n, -job.MaxAttempt), job.MaxAttempt)
	return int(min(max(a+n, 1), job.MaxAttempt))
}

// Delivery is a job handed to one consumer under a lease. Settle it exactly
// once with Ack, Retry, Snooze or DeadLetter on the broker that fetched it.
type Delivery struct {
	// Job is the delivered job. Attempt counts redeliveries.
	Job job.Job
	// Receipt is the broker's handle for this delivery (for Redis, the
	// stream entry ID). It is opaque to everyone else.
	Receipt string
	// Result is the result the handler recorded (job.SetResult), set by
	// the server before it acks the delivery; brokers that keep results
	// store it with the job's outcome. Nil when the handler recorded none.
	Result []byte
}

// Broker stores jobs and hands them out under leases.
//
// All methods are safe for concurrent use. Every method of a closed broker
// returns [ErrClosed].
type Broker interface {
	Publisher

	// Fetch returns up to max ready jobs from any of topics, oldest first
	// within a topic, each leased to this consumer for Lease(). It waits
	// a short, broker-defined time for jobs to arrive and may return an
	// empty batch and a nil error when none did; it returns ctx.Err() when
	// ctx ends, and ErrClosed when the broker is closed while it waits.
	Fetch(ctx context.Context, topics []string, max int) ([]*Delivery, error)

	// Ack settles deliveries as done; the jobs are removed.
	Ack(ctx context.Context, ds ...*Delivery) error
	// Retry re-enqueues d's job after delay as its next attempt (Attempt+1),
	// recording f, in one atomic step.
	Retry(ctx context.Context, d *Delivery, delay time.Duration, f job.Failure) error
	// Snooze re-enqueues d's job after delay without spending an attempt,
	// in one atomic step.
	Snooze(ctx context.Context, d *Delivery, delay time.Duration) error
	// DeadLetter moves d's job to its topic's dead-letter topic
	// (job.DeadLetterTopic), recording f, in one atomic step.
	DeadLetter(ctx context.Context, d *Delivery, f job.Failure) error
	// Extend renews the lease of deliveries this consumer still holds.
	Extend(ctx context.Context, ds ...*Delivery) error
	// Lease is how long a delivery stays leased without Extend before it
	// is redelivered to another consumer.
	Lease() time.Duration

	// Close releases the broker's resources and unblocks pending Fetches.
	// Unsettled deliveries stay leased and are redelivered after the lease.
	Close() error
}

// SnoozeRecorder is implemented by brokers that record why a job was
// snoozed, for operators to see while the job waits (the Redis broker). The
// server snoozes through it when the broker has it.
type SnoozeRecorder interface {
	// SnoozeBecause is Snooze that also records cause (the text of the
	// snooze's cause, such as "conveyor: circuit open"; "" for none) and
	// the time of the snooze with the job, until its next outcome. The
	// job's last failure is kept, as by Snooze.
	SnoozeBecause(ctx context.Context, d *Delivery, delay time.Duration, cause string) error
}

// TopicInfo describes the state of one topic.
type TopicInfo struct {
	Topic string `json:"topic"`
	// Length is the number of jobs in the stream: unread plus pending.
	Length int64 `json:"length"`
	// LastID is the ID of the newest stream entry ("" when none).
	LastID string `json:"last_id"`
	// Pending is the number of jobs delivered and not yet settled, over
	// all groups.
	Pending int64 `json:"pending"`
	// Lag is the number of jobs not yet delivered to the consumer group (the
	// largest over groups).
	Lag int64 `json:"lag"`
	// Delayed is the number of jobs waiting for their due time.
	Delayed int64 `json:"delayed"`
	// DeadLetters is the number of jobs in the dead-letter topic.
	DeadLetters int64 `json:"dead_letters"`
	// Groups lists consumer groups; brokers without groups report one.
	Groups []GroupInfo `json:"groups"`
	// Paused is set while the topic is paused (see [Pauser]).
	Paused bool `json:"paused,omitempty"`
	// Partitions is the number of partitions the counts add up, those
	// draining after a change of count included (see [Partitioner]); 0
	// for a topic of one partition.
	Partitions int `json:"partitions,omitempty"`
}

// GroupInfo describes one consumer group of a topic.
type GroupInfo struct {
	Name            string         `json:"name"`
	Pending         int64          `json:"pending"`
	Lag             int64          `json:"lag"`
	LastDeliveredID string         `json:"last_delivered_id"`
	Consumers       []ConsumerInfo `json:"consumers"`
}

// ConsumerInfo describes one consumer in a group. Its JSON form gives Idle
// in seconds, as a number named "idle_seconds": every duration in
// conveyor's JSON is seconds with a _seconds suffix.
type ConsumerInfo struct {
	Name    string        `json:"name"`
	Pending int64         `json:"pending"`
	Idle    time.Duration `json:"-"` // JSON: idle_seconds
}

// consumerInfoJSON is the JSON form of ConsumerInfo.
type consumerInfoJSON struct {
	Name        string  `json:"name"`
	Pending     int64   `json:"pending"`
	IdleSeconds float64 `json:"idle_seconds"`
}

// MarshalJSON encodes c with Idle as "idle_seconds".
func (c ConsumerInfo) MarshalJSON() ([]byte, error) {
	return json.Marshal(consumerInfoJSON{c.Name, c.Pending, c.Idle.Seconds()})
}

// UnmarshalJSON decodes what MarshalJSON encodes.
func (c *ConsumerInfo) UnmarshalJSON(data []byte) error {
	var v consumerInfoJSON
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	*c = ConsumerInfo{Name: v.Name, Pending: v.Pending, Idle: time.Duration(v.IdleSeconds * float64(time.Second))}
	return nil
}

// Inspector is implemented by brokers that can describe their topics.
type Inspector interface {
	// Topics lists the topics the broker holds jobs or dead letters for,
	// sorted (dead-letter topics are not listed separately).
	Topics(ctx context.Context) ([]string, error)
	// Inspect describes topic.
	Inspect(ctx context.Context, topic string) (*TopicInfo, error)
}

// DeadLetter is a job in a dead-letter topic. Job.Failure says why it is there.
type DeadLetter struct {
	// ID identifies the dead letter in the dead-letter topic; pass it to
	// replay or purge.
	ID  string  `json:"id"`
	Job job.Job `json:"job"`
}

// DeadLetterAdmin is implemented by brokers whose dead letters can be listed,
// replayed and purged.
type DeadLetterAdmin interface {
	// DeadLetters lists up to limit dead letters of topic, oldest first,
	// starting after the dead letter with ID after ("" for the start).
	DeadLetters(ctx context.Context, topic string, after string, limit int) ([]DeadLetter, error)
	// DeadLetterByID returns one dead letter of topic by ID, or
	// ErrNotFound.
	DeadLetterByID(ctx context.Context, topic, id string) (*DeadLetter, error)
	// ReplayDeadLetters moves the dead letters with ids back to topic with
	// their attempts reset; nil ids means all of them, as a snapshot taken
	// first, so jobs that fail again during the replay are not replayed
	// twice. It returns how many moved.
	ReplayDeadLetters(ctx context.Context, topic string, ids []string) (int, error)
	// PurgeDeadLetters deletes the dead letters with ids; nil ids means all.
	// It returns how many were deleted.
	PurgeDeadLetters(ctx context.Context, topic string, ids []string) (int, error)
}

// TrimOptions says what Trim removes. Set exactly one of MaxLen and
// OlderThan; IncludeUnread may be added to either.
type TrimOptions struct {
	// MaxLen keeps at most this many newest entries.
	MaxLen int64
	// OlderThan removes entries enqueued longer ago than this.
	OlderThan time.Duration
	// IncludeUnread lets the trim remove entries not yet delivered to every
	// consumer group (and, on a stream no group reads, any entry): a
	// deliberate drop of a backlog of jobs that never ran. Pending entries
	// are kept even then.
	IncludeUnread bool
}

// Trimmer is implemented by brokers whose streams can be trimmed. Settled
// jobs are deleted from their stream, so every entry left is a live job. A
// trim never removes an entry that is still pending (delivered and not
// settled), nor any entry newer than it; unless IncludeUnread is set, it
// also never removes an entry not yet delivered to every consumer group (nor
// any entry of a stream no group reads), nor any entry newer than it.
type Trimmer interface {
	// Trim removes old entries of topic and returns how many it removed.
	Trim(ctx context.Context, topic string, opts TrimOptions) (int64, error)
}

// TrimDryRunner is implemented by brokers that can say how many entries a
// trim would remove without removing any, for a dry run that reports the
// real figure rather than an estimate.
type TrimDryRunner interface {
	// TrimDryRun returns how many entries Trim with the same topic and opts
	// would remove now, and removes nothing. It accepts and rejects the
	// same opts as Trim. The count is exact at the moment of the call: jobs
	// published, read or settled afterwards change what a later Trim
	// removes.
	TrimDryRun(ctx context.Context, topic string, opts TrimOptions) (int64, error)
}
