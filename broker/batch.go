package broker

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Headers that tie jobs to the batches of a [BatchStore]. The store sets
// them; a handler reads them (package workflow has accessors). A handler
// that opens a batch of its own passes its job's HeaderBatch as the new
// batch's Parent (package workflow does so).
const (
	// HeaderBatch names the batch a job is a member of. A member's end
	// (ack, dead letter, cancel) is recorded in that batch.
	HeaderBatch = "conveyor-batch"
	// HeaderBatchCallback names the batch whose callback the job is. The
	// callback's own end is recorded in that batch (its callback state).
	HeaderBatchCallback = "conveyor-batch-callback"
	// HeaderBatchSucceeded, HeaderBatchDead, HeaderBatchCancelled and
	// HeaderBatchTotal carry the batch's counts (decimal) on its callback.
	HeaderBatchSucceeded = "conveyor-batch-succeeded"
	HeaderBatchDead      = "conveyor-batch-dead"
	HeaderBatchCancelled = "conveyor-batch-cancelled"
	HeaderBatchTotal     = "conveyor-batch-total"
	// HeaderChainFailed is set on a chain link dead-lettered because an
	// earlier link did not succeed: "<topic>/<job ID>" of that link.
	HeaderChainFailed = "conveyor-chain-failed"
)

// ReasonChainFailed is the [job.Failure.Reason] of a callback (a chain's
// next link) dead-lettered because a member of a RequireSuccess batch did not
// succeed.
const ReasonChainFailed = "chain-failed"

// DefaultBatchRetention is how long a batch's record is kept after it
// completes (or is cancelled) when BatchSpec.Retention is zero.
const DefaultBatchRetention = 24 * time.Hour

// DefaultBatchOpenTTL is how long the record of a batch that never
// completes (a member was never published, say) is kept after it opened.
const DefaultBatchOpenTTL = 7 * 24 * time.Hour

// ErrBatchClosed is returned when a child batch is opened in a parent batch
// that has completed or was cancelled.
var ErrBatchClosed = errors.New("conveyor: batch is complete or cancelled")

// BatchSpec describes a batch to open: its members are published as jobs,
// and when every member has ended the callback is enqueued once.
//
// A batch here is a group of jobs with a record and a callback; do not
// confuse it with [Publisher.PublishBatch], which only publishes many
// messages in one call and keeps no record of them.
type BatchSpec struct {
	// ID identifies the batch. Required; at most 200 bytes, without '{' or
	// '}'.
	ID string
	// Members are the jobs of the batch, in any topics. Each needs an ID,
	// unique in the batch; their headers get HeaderBatch.
	Members []Message
	// Callback, when set, is enqueued once when every member has ended
	// (acked, dead-lettered or cancelled), with HeaderBatchCallback and the
	// counts headers. Its ID defaults to "<batch ID>.callback". It is not
	// enqueued when the batch is cancelled. Its UniqueKey and UniqueFor are
	// set by the store (to make a second enqueue after a crash a no-op).
	Callback *Message
	// RequireSuccess makes the callback run only if every member succeeded:
	// otherwise it is dead-lettered in its topic with reason
	// ReasonChainFailed, an error and HeaderChainFailed naming the first
	// member that did not succeed. Chains are built on it.
	RequireSuccess bool
	// Parent, when set, is the batch this batch is a child of: the batch is
	// registered as a member of Parent ("batch:<ID>") before its members are
	// published, and ends in Parent when it completes (succeeded when all of
	// its members succeeded, dead otherwise).
	Parent string
	// Unpublished registers the members without publishing them: each is
	// published by someone else, as the callback of another batch (a
	// chain's next link). Their messages must carry HeaderBatch.
	Unpublished bool
	// Retention is how long the record is kept after completion. Zero
	// means DefaultBatchRetention; at most MaxUniqueFor.
	Retention time.Duration
}

// Check validates s.
func (s *BatchSpec) Check() error {
	if s.ID == "" || len(s.ID) > 200 || containsAny(s.ID, "{}") {
		return fmt.Errorf("%w: batch ID %q: required, at most 200 bytes, without braces", ErrInvalidMessage, s.ID)
	}
	if len(s.Members) == 0 {
		return fmt.Errorf("%w: batch %s has no members", ErrInvalidMessage, s.ID)
	}
	if s.Retention < 0 || s.Retention > MaxUniqueFor {
		return fmt.Errorf("%w: batch retention %v is not between 0 and %v", ErrInvalidMessage, s.Retention, MaxUniqueFor)
	}
	seen := make(map[string]bool, len(s.Members))
	for i := range s.Members {
		m := &s.Members[i]
		if m.Topic == "" || m.ID == "" {
			return fmt.Errorf("%w: batch %s: member %d needs a topic and an ID", ErrInvalidMessage, s.ID, i)
		}
		if seen[m.ID] {
			return fmt.Errorf("%w: batch %s: member ID %q appears twice", ErrInvalidMessage, s.ID, m.ID)
		}
		seen[m.ID] = true
		if err := m.CheckLimits(); err != nil {
			return fmt.Errorf("batch %s: member %d: %w", s.ID, i, err)
		}
		if m.UniqueKey != "" {
			// A member refused as a duplicate would never end.
			return fmt.Errorf("%w: batch %s: member %d has a unique key; members cannot be unique jobs", ErrInvalidMessage, s.ID, i)
		}
	}
	if s.Callback != nil {
		if s.Callback.Topic == "" {
			return fmt.Errorf("%w: batch %s: callback needs a topic", ErrInvalidMessage, s.ID)
		}
		if err := s.Callback.CheckLimits(); err != nil {
			return fmt.Errorf("batch %s: callback: %w", s.ID, err)
		}
	}
	return nil
}

// RetentionOrDefault returns s.Retention, or DefaultBatchRetention when zero.
func (s *BatchSpec) RetentionOrDefault() time.Duration {
	if s.Retention <= 0 {
		return DefaultBatchRetention
	}
	return s.Retention
}

func containsAny(s, chars string) bool {
	for _, c := range s {
		for _, d := range chars {
			if c == d {
				return true
			}
		}
	}
	return false
}

// ChildMemberID is the member ID under which a child batch is registered in
// its parent.
func ChildMemberID(child string) string { return "batch:" + child }

// CallbackID returns the ID a batch's callback gets when its message has
// none.
func CallbackID(batch string) string { return batch + ".callback" }

// CallbackUniqueKey is the unique key of a batch's callback: a second
// enqueue of the callback (after a crash) finds it held and does nothing.
func CallbackUniqueKey(batch string) string { return "conveyor-batch:" + batch }

// The states of a batch ([BatchInfo.State]).
const (
	BatchOpen      = "open"
	BatchComplete  = "complete"
	BatchCancelled = "cancelled"
)

// The states of a member ([BatchMember.State]).
const (
	MemberPending   = "pending"
	MemberSucceeded = "succeeded"
	MemberDead      = "dead"
	MemberCancelled = "cancelled"
)

// The states of a batch's callback ([BatchInfo.CallbackState]).
const (
	// CallbackNone: the batch has no callback.
	CallbackNone = "none"
	// CallbackWaiting: members are still running.
	CallbackWaiting = "waiting"
	// CallbackDue: the batch completed; the callback is being enqueued (a
	// crash here is repaired by the store's sweeper).
	CallbackDue = "due"
	// CallbackEnqueued: the callback was enqueued.
	CallbackEnqueued = "enqueued"
	// CallbackDeadLettered: the callback was dead-lettered without running
	// (RequireSuccess and a member did not succeed).
	CallbackDeadLettered = "dead-lettered"
	// CallbackSucceeded and CallbackDead: the callback job itself ended.
	CallbackSucceeded = "succeeded"
	CallbackDead      = "dead"
	// CallbackSkipped: the batch was cancelled; the callback never runs.
	CallbackSkipped = "skipped"
)

// BatchMember is one member of a batch as [BatchStore.BatchInfo] reports it.
type BatchMember struct {
	// ID is the member's job ID ("batch:<ID>" for a child batch).
	ID string `json:"id"`
	// Topic is the member's topic ("" for a child batch).
	Topic string `json:"topic"`
	// State is MemberPending, MemberSucceeded, MemberDead or
	// MemberCancelled.
	State string `json:"state"`
	// Result is the result the member's handler recorded (Delivery.Result
	// at its ack), nil for none.
	Result []byte `json:"result,omitempty"`
}

// BatchInfo describes a batch.
type BatchInfo struct {
	ID string `json:"id"`
	// State is BatchOpen, BatchComplete or BatchCancelled.
	State     string `json:"state"`
	Total     int    `json:"total"`
	Succeeded int    `json:"succeeded"`
	Dead      int    `json:"dead"`
	Cancelled int    `json:"cancelled"`
	// Members lists every member, in the order they were registered.
	Members []BatchMember `json:"members"`
	// CallbackTopic and CallbackID name the callback ("" for none).
	CallbackTopic string `json:"callback_topic,omitempty"`
	CallbackID    string `json:"callback_id,omitempty"`
	// CallbackState is one of the Callback* states.
	CallbackState  string `json:"callback_state"`
	RequireSuccess bool   `json:"require_success,omitempty"`
	Parent         string `json:"parent,omitempty"`
	// Failed names the first member that did not succeed ("<topic>/<ID>",
	// or the origin it carried for a chain link dead-lettered by an
	// earlier link's failure) and its error; "" when none.
	Failed      string    `json:"failed,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	CompletedAt time.Time `json:"completed_at,omitzero"`
}

// Ended returns the number of members that ended.
func (g *BatchInfo) Ended() int { return g.Succeeded + g.Dead + g.Cancelled }

// Results returns the results of the members that recorded one, by member
// ID.
func (g *BatchInfo) Results() map[string][]byte {
	out := map[string][]byte{}
	for _, m := range g.Members {
		if m.Result != nil {
			out[m.ID] = m.Result
		}
	}
	return out
}

// BatchStore is implemented by brokers that run batches of jobs with a
// callback (fan-out/fan-in) and chains: package workflow is built on it.
//
// A member's end is recorded in its batch by the broker's own settles: Ack
// (succeeded, with Delivery.Result), DeadLetter and every dead-lettering the
// broker does itself (poison limit, malformed entry) (dead), and a dead
// letter with reason job.ReasonCancelled (cancelled). It is recorded once
// per member ID: a member retried, or redelivered after a crash, counts
// once. The member whose end completes the batch makes the broker enqueue
// the callback, exactly once.
type BatchStore interface {
	// OpenBatch records the batch, registers it in its parent if it has
	// one, then publishes its members. Opening a batch whose ID exists
	// already publishes its members again (their IDs make this safe to
	// retry after an error) and does not change the record.
	OpenBatch(ctx context.Context, spec BatchSpec) error
	// BatchInfo describes the batch, or returns an error wrapping
	// ErrNotFound (never opened, or its retention ended).
	BatchInfo(ctx context.Context, id string) (*BatchInfo, error)
	// CancelBatch marks an open batch cancelled (its callback will not
	// run) and cancels its pending members (see [Canceller]): waiting ones
	// are dead-lettered with reason job.ReasonCancelled, running ones get a
	// cancel request. It returns the batch as it is after the call. A
	// complete batch is left as it is.
	CancelBatch(ctx context.Context, id string) (*BatchInfo, error)
}
