package broker

import (
	"context"
	"errors"
	"slices"
)

// Publisher publishes jobs: the half of a [Broker] that producers use. Every
// Broker is a Publisher, and so is a [*Producer], so code that only
// publishes should take a Publisher: it then accepts a broker, a producer
// with middleware, or a test double with two methods.
//
// Implementations are safe for concurrent use.
type Publisher interface {
	// Publish enqueues one job and returns its ID. For a message whose
	// unique key another job holds, it enqueues nothing and returns the
	// holder's ID with a *[DuplicateError].
	Publish(ctx context.Context, m Message) (string, error)
	// PublishBatch enqueues many jobs in as few round trips as the store
	// allows and returns their IDs in order. On error, some may have been
	// enqueued: when the error is a *[BatchError], the IDs returned with it
	// are those of the jobs the store confirmed, the holders' IDs for the
	// duplicates, and "" for the others.
	PublishBatch(ctx context.Context, ms []Message) ([]string, error)
}

var _ Publisher = (*Producer)(nil)

// PublishFunc publishes a batch of messages and returns their IDs.
type PublishFunc func(ctx context.Context, ms []Message) ([]string, error)

// PublishMiddleware wraps publishing, on the producer side: counting enqueues,
// injecting trace context into headers, validating payloads. It may change the
// messages (copy Headers before writing to them: the map may be the caller's).
// Messages refused as duplicates of a unique job are reported as
// PublishBatch reports them, in a *[BatchError]'s Duplicates, also for a
// batch of one.
type PublishMiddleware func(next PublishFunc) PublishFunc

// Producer publishes through a chain of [PublishMiddleware] to a
// [Publisher]. It is a Publisher itself, so producers compose: a Producer
// may publish to another Producer. It is safe for concurrent use.
type Producer struct {
	b    Publisher
	next PublishFunc
}

// NewProducer returns a Producer publishing to b (a [Broker], another
// Producer, or any Publisher) through mw, the first listed outermost; nil
// entries of mw are skipped. The chain is built once.
func NewProducer(b Publisher, mw ...PublishMiddleware) *Producer {
	next := PublishFunc(func(ctx context.Context, ms []Message) ([]string, error) {
		if len(ms) == 1 {
			id, err := b.Publish(ctx, ms[0])
			if errors.Is(err, ErrDuplicate) {
				// Reported as PublishBatch reports it, for the middleware.
				return []string{id}, &BatchError{Duplicates: []int{0}, Err: err}
			}
			if err != nil {
				return nil, err
			}
			return []string{id}, nil
		}
		return b.PublishBatch(ctx, ms)
	})
	for i := len(mw) - 1; i >= 0; i-- {
		if mw[i] != nil {
			next = mw[i](next)
		}
	}
	return &Producer{b: b, next: next}
}

// Publish publishes one message and returns its ID; for a duplicate
// unique key, the holder's ID with the *[DuplicateError].
func (p *Producer) Publish(ctx context.Context, m Message) (string, error) {
	ids, err := p.next(ctx, []Message{m})
	var be *BatchError
	if errors.As(err, &be) && len(be.Failed) == 0 && len(be.Duplicates) == 1 && len(ids) == 1 {
		return ids[0], be.Err // the holder's ID and its *DuplicateError
	}
	if err != nil {
		return "", err
	}
	if len(ids) == 0 {
		return "", nil
	}
	return ids[0], nil
}

// PublishBatch publishes ms (not modified) and returns their IDs in order.
func (p *Producer) PublishBatch(ctx context.Context, ms []Message) ([]string, error) {
	return p.next(ctx, slices.Clone(ms))
}

// Publisher returns the Publisher p publishes to: the one given to
// [NewProducer].
func (p *Producer) Publisher() Publisher { return p.b }
