// Package workflow runs batches and chains of jobs on a broker that
// implements [broker.BatchStore] (broker/memory and broker/redis do).
//
// # Batches
//
// A batch is a set of member jobs, in any topics, and a callback job: when
// every member has ended (acked, dead-lettered — by a handler or by the
// broker itself — or cancelled) the callback is enqueued exactly once, with
// the batch's counts in its headers; its handler reads the members' results
// with [Client.Results]:
//
//	wf, _ := workflow.New(b)
//	id, err := wf.OpenBatch(ctx, workflow.Batch{
//		Members:  []broker.Message{{Topic: "step", Payload: p1}, {Topic: "step", Payload: p2}},
//		Callback: &broker.Message{Topic: "aggregate"},
//	})
//
// A member's handler can open a batch of its own with [Client.OpenChild]:
// the parent does not complete before the child has.
//
// # Chains
//
// [Client.Chain] runs jobs one after another: each link runs after the one
// before succeeded, and reads its result with [Client.Previous]. When a link
// is dead-lettered, every later link is dead-lettered in its topic with
// reason broker.ReasonChainFailed and an error naming the failed link.
//
// # Cancel
//
// [Client.CancelBatch] cancels the pending members; the callback of a
// cancelled batch never runs and the batch shows state "cancelled".
package workflow

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/job"
)

// ErrUnsupported is returned by [New] for a broker that does not implement
// broker.BatchStore.
var ErrUnsupported = errors.New("conveyor/workflow: the broker does not implement broker.BatchStore")

// ErrNoBatch is returned by [Client.Results] and [Client.Previous] for a job
// that is no batch's callback.
var ErrNoBatch = errors.New("conveyor/workflow: the job is no batch's callback")

// Client opens, inspects and cancels batches and chains. It is safe for
// concurrent use.
type Client struct {
	s broker.BatchStore
}

// New returns a Client on b, which must implement broker.BatchStore.
func New(b any) (*Client, error) {
	s, ok := b.(broker.BatchStore)
	if !ok {
		return nil, fmt.Errorf("%w (%T)", ErrUnsupported, b)
	}
	return &Client{s: s}, nil
}

// Batch is a batch to open.
type Batch struct {
	// ID identifies the batch; a random one is made when empty.
	ID string
	// Members are the jobs of the batch. Members without an ID get a
	// random one. Members cannot have a UniqueKey.
	Members []broker.Message
	// Callback is enqueued once when every member has ended; nil for none.
	Callback *broker.Message
	// RequireSuccess dead-letters the callback (reason
	// broker.ReasonChainFailed) instead of running it when a member did
	// not succeed.
	RequireSuccess bool
	// Parent is the batch this one is a child of ("" for none); see
	// [Client.OpenChild].
	Parent string
	// Retention is how long the batch's record is kept after it completed;
	// zero means broker.DefaultBatchRetention (24h).
	Retention time.Duration
}

// NewID returns a random ID for a batch, a chain or a job.
func NewID() string {
	var p [12]byte
	_, _ = rand.Read(p[:])
	return hex.EncodeToString(p[:])
}

// OpenBatch records the batch and publishes its members, and returns the
// batch's ID. A member without an ID gets "<batch ID>.<n>" (n from 1, its
// place in Members), so that opening the same batch again (after an error,
// or from a handler run again after a crash) publishes the same members:
// the record is not changed, members of an open batch are published again
// and each is counted once, and a batch that has completed publishes
// nothing.
func (c *Client) OpenBatch(ctx context.Context, bt Batch) (string, error) {
	spec := broker.BatchSpec{ID: bt.ID, Members: bt.Members, Callback: bt.Callback, RequireSuccess: bt.RequireSuccess, Parent: bt.Parent, Retention: bt.Retention}
	if spec.ID == "" {
		spec.ID = NewID()
	}
	for i := range spec.Members {
		if spec.Members[i].ID == "" {
			spec.Members[i].ID = spec.ID + "." + strconv.Itoa(i+1)
		}
	}
	if err := c.s.OpenBatch(ctx, spec); err != nil {
		return "", err
	}
	return spec.ID, nil
}

// OpenChild opens bt as a child of the batch j is a member of (when j is a
// member of none, as a batch of its own): the parent does not complete until
// bt has completed. Call it from j's handler, before the handler returns.
//
// A child without an ID gets "<j's ID>.child", so that a run of j again
// (after a crash) opens the same child rather than a second one that its
// parent would wait for too. A handler that opens several children names
// each (bt.ID), in a way that a second run repeats.
func (c *Client) OpenChild(ctx context.Context, j *job.Job, bt Batch) (string, error) {
	bt.Parent = BatchOf(j)
	if bt.ID == "" {
		bt.ID = j.ID + ".child"
	}
	return c.OpenBatch(ctx, bt)
}

// BatchOf returns the ID of the batch j is a member of, or "".
func BatchOf(j *job.Job) string { return j.Headers[broker.HeaderBatch] }

// CallbackOf returns the ID of the batch whose callback j is, or "".
func CallbackOf(j *job.Job) string { return j.Headers[broker.HeaderBatchCallback] }

// Counts are a batch's counts as its callback receives them.
type Counts struct {
	Succeeded, Dead, Cancelled, Total int
}

// CountsOf returns the counts carried by j, a batch's callback.
func CountsOf(j *job.Job) Counts {
	n := func(h string) int { v, _ := strconv.Atoi(j.Headers[h]); return v }
	return Counts{n(broker.HeaderBatchSucceeded), n(broker.HeaderBatchDead), n(broker.HeaderBatchCancelled), n(broker.HeaderBatchTotal)}
}

// BatchInfo describes batch id, or returns an error wrapping
// broker.ErrNotFound.
func (c *Client) BatchInfo(ctx context.Context, id string) (*broker.BatchInfo, error) {
	return c.s.BatchInfo(ctx, id)
}

// CancelBatch cancels batch id: see broker.BatchStore.CancelBatch.
func (c *Client) CancelBatch(ctx context.Context, id string) (*broker.BatchInfo, error) {
	return c.s.CancelBatch(ctx, id)
}

// Results returns the results of the members of the batch whose callback j
// is, by member ID (members that recorded none are absent), with the
// batch's record.
func (c *Client) Results(ctx context.Context, j *job.Job) (map[string][]byte, *broker.BatchInfo, error) {
	id := CallbackOf(j)
	if id == "" {
		return nil, nil, ErrNoBatch
	}
	bi, err := c.s.BatchInfo(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	return bi.Results(), bi, nil
}

// Previous returns the result of the link before j in a chain (nil when it
// recorded none).
func (c *Client) Previous(ctx context.Context, j *job.Job) ([]byte, error) {
	res, bi, err := c.Results(ctx, j)
	if err != nil {
		return nil, err
	}
	if len(bi.Members) == 0 {
		return nil, nil
	}
	return res[bi.Members[0].ID], nil
}

// ChainInfo names what [Client.Chain] opened.
type ChainInfo struct {
	// JobIDs are the links' job IDs, in order.
	JobIDs []string
	// BatchIDs are the IDs of the single-member batches, one per link:
	// BatchIDs[i] has member JobIDs[i] and, but for the last, callback
	// JobIDs[i+1].
	BatchIDs []string
}

// Chain runs links one after another: link i+1 is enqueued when link i
// succeeded, and reads link i's result with [Client.Previous]. When a link
// is dead-lettered (or cancelled), every later link is dead-lettered in its
// topic with reason broker.ReasonChainFailed, header
// broker.HeaderChainFailed and an error naming that link ("<topic>/<job
// ID>"). Links without an ID get a random one. Each link is a
// single-member batch whose callback is the next link, with RequireSuccess;
// the last link's batch has no callback.
func (c *Client) Chain(ctx context.Context, links ...broker.Message) (*ChainInfo, error) {
	if len(links) == 0 {
		return nil, fmt.Errorf("%w: empty chain", broker.ErrInvalidMessage)
	}
	chain := NewID()
	info := &ChainInfo{JobIDs: make([]string, len(links)), BatchIDs: make([]string, len(links))}
	ms := make([]broker.Message, len(links))
	for i, l := range links {
		if l.ID == "" {
			l.ID = NewID()
		}
		info.JobIDs[i] = l.ID
		info.BatchIDs[i] = chain + "." + strconv.Itoa(i+1)
		l.Headers = maps.Clone(l.Headers)
		if l.Headers == nil {
			l.Headers = map[string]string{}
		}
		l.Headers[broker.HeaderBatch] = info.BatchIDs[i]
		ms[i] = l
	}
	for i := len(links) - 1; i >= 0; i-- {
		spec := broker.BatchSpec{ID: info.BatchIDs[i], Members: ms[i : i+1], RequireSuccess: true, Unpublished: i > 0}
		if i+1 < len(links) {
			spec.Callback = &ms[i+1]
		}
		if err := c.s.OpenBatch(ctx, spec); err != nil {
			return nil, err
		}
	}
	return info, nil
}
