package broker

import (
	"context"
	"slices"
)

// PublishFunc publishes a batch of messages and returns their IDs.
type PublishFunc func(ctx context.Context, ms []Message) ([]string, error)

// PublishMiddleware wraps publishing, on the producer side: counting enqueues,
// injecting trace context into headers, validating payloads. It may change the
// messages (copy Headers before writing to them: the map may be the caller's).
type PublishMiddleware func(next PublishFunc) PublishFunc

// Producer publishes through a chain of [PublishMiddleware] to a Broker.
// It is safe for concurrent use.
type Producer struct {
	b    Broker
	next PublishFunc
}

// NewProducer returns a Producer publishing to b through mw, the first listed
// outermost. The chain is built once.
func NewProducer(b Broker, mw ...PublishMiddleware) *Producer {
	next := PublishFunc(func(ctx context.Context, ms []Message) ([]string, error) {
		if len(ms) == 1 {
			id, err := b.Publish(ctx, ms[0])
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

// Publish publishes one message and returns its ID.
func (p *Producer) Publish(ctx context.Context, m Message) (string, error) {
	ids, err := p.next(ctx, []Message{m})
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

// Broker returns the broker p publishes to.
func (p *Producer) Broker() Broker { return p.b }
