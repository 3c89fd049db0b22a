package redis

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"sync"

	"github.com/conveyor-jobs/conveyor/broker"
)

// maxCoalesced is the most Publish calls one pipeline carries; more
// waiting calls go in the next.
const maxCoalesced = 256

// coalescer sends concurrent Publish calls together, the way the server's
// acker sends acknowledgements: a Publish made while no other is in flight
// is sent at once, by its caller, exactly as PublishBatch of one message;
// the calls made while one is in flight wait, and go together in the next
// pipeline as soon as that one returns. There is no timer: a call waits at
// most for the round trip in flight before its own. Under load a single
// goroutine sends pipeline after pipeline until no call is waiting.
//
// Each waiting call gets its own outcome: its job ID, its
// *broker.DuplicateError, or its command's error. A call is validated
// before it waits, so an invalid message fails alone. A call whose ctx ends
// while it waits is withdrawn (its job is not sent, and it returns ctx's
// error); once its message has gone into a pipeline it returns that
// pipeline's outcome for it even if its ctx ends meanwhile (the pipeline
// is bounded by the client's read and write timeouts): a job that may
// already be in Redis cannot be withdrawn, and the answer says whether it
// was enqueued, or, for an error whose reply was lost, that it may have
// been, as for any Publish.
type coalescer struct {
	mu      sync.Mutex
	busy    bool           // a Publish or a pipeline of them is in flight
	closing bool           // Close has begun: start no sender
	waiting []*pubCall     // calls waiting for the next pipeline, in order
	sender  sync.WaitGroup // the goroutine sending pipelines
}

// pubCall is one waiting Publish call.
type pubCall struct {
	ctx  context.Context
	m    broker.Message
	sent bool // taken into a pipeline (under coalescer.mu)
	id   string
	err  error
	done chan struct{} // closed when id and err are set
}

// publishCoalesced is Publish with coalescing: see coalescer.
func (b *Broker) publishCoalesced(ctx context.Context, m broker.Message) (string, error) {
	if err := b.check(ctx); err != nil {
		return "", err
	}
	if err := validateMessage(0, &m); err != nil {
		return "", err
	}
	c := &b.pub
	c.mu.Lock()
	if !c.busy {
		// Nothing in flight: send at once, as without coalescing.
		c.busy = true
		c.mu.Unlock()
		id, err := b.publishOne(ctx, m)
		b.publishDone()
		return id, err
	}
	call := &pubCall{ctx: ctx, m: m, done: make(chan struct{})}
	c.waiting = append(c.waiting, call)
	c.mu.Unlock()
	select {
	case <-call.done:
		return call.id, call.err
	case <-ctx.Done():
	}
	c.mu.Lock()
	if !call.sent {
		if i := slices.Index(c.waiting, call); i >= 0 {
			c.waiting = slices.Delete(c.waiting, i, i+1)
		}
		c.mu.Unlock()
		return "", ctx.Err()
	}
	c.mu.Unlock()
	<-call.done // in a pipeline: its outcome is known when the pipeline returns
	return call.id, call.err
}

// publishDone ends a caller's own send: the calls that waited meanwhile
// are sent by a sender goroutine, or the coalescer becomes idle.
func (b *Broker) publishDone() {
	c := &b.pub
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.waiting) == 0 {
		c.busy = false
		return
	}
	if c.closing {
		for _, call := range c.waiting {
			call.sent = true
			call.err = broker.ErrClosed
			close(call.done)
		}
		c.waiting = nil
		c.busy = false
		return
	}
	c.sender.Add(1)
	go b.sendWaiting()
}

// sendWaiting sends the waiting calls, pipeline after pipeline, until none
// is left.
func (b *Broker) sendWaiting() {
	c := &b.pub
	defer c.sender.Done()
	var calls []*pubCall
	var ms []broker.Message
	var errs []error
	for sent := false; ; sent = true {
		if sent {
			// The callers just answered publish again at once, most of
			// them: let them queue, so that the next pipeline carries
			// them rather than the first few.
			runtime.Gosched()
		}
		c.mu.Lock()
		if len(c.waiting) == 0 {
			c.busy = false
			c.mu.Unlock()
			return
		}
		n := min(len(c.waiting), maxCoalesced)
		calls = append(calls[:0], c.waiting[:n]...)
		rest := copy(c.waiting, c.waiting[n:])
		clear(c.waiting[rest:])
		c.waiting = c.waiting[:rest]
		for _, call := range calls {
			call.sent = true
		}
		c.mu.Unlock()

		ms = ms[:0]
		for _, call := range calls {
			ms = append(ms, call.m)
		}
		errs = append(errs[:0], make([]error, n)...)
		b.sendCalls(calls, ms, errs)
		clear(ms) // let the payloads go
		clear(calls)
	}
}

// sendCalls sends calls (whose messages are ms) in one pipeline and gives
// each its outcome. The pipeline does not end with any caller's ctx: each
// of its callers is owed the outcome of its own message.
func (b *Broker) sendCalls(calls []*pubCall, ms []broker.Message, errs []error) {
	ctx := context.WithoutCancel(calls[0].ctx)
	if len(calls) == 1 {
		calls[0].id, calls[0].err = b.publishOne(ctx, ms[0])
		close(calls[0].done)
		return
	}
	ids, err := b.publishBatch(ctx, ms, errs)
	var be *broker.BatchError
	if err != nil && !errors.As(err, &be) {
		// The whole batch failed before anything was sent (the broker
		// was closed).
		for _, call := range calls {
			call.err = err
			close(call.done)
		}
		return
	}
	for i, call := range calls {
		call.id, call.err = ids[i], errs[i]
		close(call.done)
	}
}

// closePublish waits for the sender goroutine; the calls still waiting
// when Close began get ErrClosed from it.
func (b *Broker) closePublish() {
	c := &b.pub
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	c.sender.Wait()
}
