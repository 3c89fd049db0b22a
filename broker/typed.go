package broker

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"time"

	"github.com/conveyor-jobs/conveyor/job"
)

// PublishOptions are the settings of one job published by a
// [TypedPublisher]. Every field's zero value is the default, and a nil
// *PublishOptions means all defaults.
type PublishOptions struct {
	// ID is the job's ID (Message.ID). Empty means the broker generates
	// one.
	ID string
	// Headers are the job's headers (Message.Headers). They are copied
	// into each message: the map is neither kept nor modified. Nil means
	// none.
	Headers map[string]string
	// ProcessAt makes the job due at this time (Message.ProcessAt). Zero
	// means now, unless Delay is set.
	ProcessAt time.Time
	// Delay makes the job due this long after publication (Message.Delay);
	// it is ignored when ProcessAt is set. Zero means now.
	Delay time.Duration
	// MaxAttempts is the job's own attempt limit (Message.MaxAttempts).
	// Zero means the retry policy decides.
	MaxAttempts int
	// Timeout is the job's own handler deadline (Message.Timeout). Zero
	// means the timeout middleware decides.
	Timeout time.Duration
	// UniqueKey makes the job unique in its topic (Message.UniqueKey):
	// publishing it while a job with the same key is held returns that
	// job's ID and a *[DuplicateError]. Empty means not unique.
	UniqueKey string
	// UniqueFor keeps the key held after the job is acked, until UniqueFor
	// after its first enqueue (Message.UniqueFor). Zero releases it at the
	// ack.
	UniqueFor time.Duration
}

// message returns the Message that carries payload to topic with o's
// settings. o may be nil.
func (o *PublishOptions) message(topic string, payload []byte) Message {
	m := Message{Topic: topic, Payload: payload}
	if o == nil {
		return m
	}
	m.ID = o.ID
	m.Headers = maps.Clone(o.Headers)
	m.ProcessAt = o.ProcessAt
	m.Delay = o.Delay
	m.MaxAttempts = o.MaxAttempts
	m.Timeout = o.Timeout
	m.UniqueKey = o.UniqueKey
	m.UniqueFor = o.UniqueFor
	return m
}

// EncodeError reports a value that a [TypedPublisher] could not encode.
// Nothing was published.
type EncodeError struct {
	// Topic is the topic the value was for.
	Topic string
	// Type is the value's Go type.
	Type string
	// Err is the codec's error.
	Err error
}

// Error names the type, the topic and the codec's error.
func (e *EncodeError) Error() string {
	return fmt.Sprintf("conveyor: cannot encode %s for topic %q: %v", e.Type, e.Topic, e.Err)
}

// Unwrap returns the codec's error.
func (e *EncodeError) Unwrap() error { return e.Err }

// TypedPublisher publishes values of type T to one topic: the producer's
// twin of [job.Typed]. It encodes each value with its codec and publishes
// the bytes through a [Publisher], so a handler made by job.Typed (or
// job.TypedWith and the same codec) decodes what it published.
//
// A TypedPublisher is safe for concurrent use when its Publisher and codec
// are; the zero value is not usable: make one with [NewTypedPublisher].
type TypedPublisher[T any] struct {
	p     Publisher
	topic string
	codec job.Codec
	typ   string
}

// NewTypedPublisher returns a TypedPublisher that encodes values of type T
// with c and publishes them to topic through p (a [Broker], a [*Producer]
// or any Publisher). A nil c means [job.JSON], the codec of [job.Typed].
//
// It panics if p is nil or topic is empty: both are programming errors.
func NewTypedPublisher[T any](p Publisher, topic string, c job.Codec) *TypedPublisher[T] {
	typ := reflect.TypeFor[T]().String()
	if p == nil {
		panic(fmt.Sprintf("conveyor: NewTypedPublisher[%s] for topic %q: nil Publisher", typ, topic))
	}
	if topic == "" {
		panic(fmt.Sprintf("conveyor: NewTypedPublisher[%s]: empty topic", typ))
	}
	if c == nil {
		c = job.JSON{}
	}
	return &TypedPublisher[T]{p: p, topic: topic, codec: c, typ: typ}
}

// Topic returns the topic t publishes to.
func (t *TypedPublisher[T]) Topic() string { return t.topic }

// Message returns the Message that Publish would publish for v with opts
// (nil for defaults), or an [*EncodeError]. Use it to build a batch whose
// jobs need options of their own (an ID each, say) and publish it with
// the Publisher's PublishBatch.
func (t *TypedPublisher[T]) Message(v T, opts *PublishOptions) (Message, error) {
	payload, err := t.codec.Marshal(v)
	if err != nil {
		return Message{}, &EncodeError{Topic: t.topic, Type: t.typ, Err: err}
	}
	return opts.message(t.topic, payload), nil
}

// Publish encodes v and publishes it with opts (nil for defaults), and
// returns the job's ID. When v cannot be encoded it returns an
// [*EncodeError] and publishes nothing; otherwise it returns what the
// Publisher's Publish returns (for a duplicate unique key, the existing
// job's ID and a *[DuplicateError]).
func (t *TypedPublisher[T]) Publish(ctx context.Context, v T, opts *PublishOptions) (string, error) {
	m, err := t.Message(v, opts)
	if err != nil {
		return "", err
	}
	return t.p.Publish(ctx, m)
}

// PublishBatch encodes vs and publishes them in one PublishBatch call, each
// with opts (nil for defaults), and returns their IDs in order. opts.ID may
// be set only for a batch of one, since jobs sharing an ID could not be told
// apart: for a larger batch it returns an error matching
// [ErrInvalidMessage]. When any value cannot be encoded it returns that
// value's [*EncodeError], wrapped with its index, and publishes nothing.
// Otherwise it returns what the Publisher's PublishBatch returns, a
// *[BatchError] included, unchanged.
func (t *TypedPublisher[T]) PublishBatch(ctx context.Context, vs []T, opts *PublishOptions) ([]string, error) {
	if opts != nil && opts.ID != "" && len(vs) > 1 {
		return nil, fmt.Errorf("%w: PublishOptions.ID %q given for a batch of %d values of %s for topic %q: "+
			"each job needs an ID of its own (build the messages with Message)", ErrInvalidMessage, opts.ID, len(vs), t.typ, t.topic)
	}
	if opts != nil && opts.UniqueKey != "" && len(vs) > 1 {
		return nil, fmt.Errorf("%w: PublishOptions.UniqueKey %q given for a batch of %d values of %s for topic %q: "+
			"all but the first would be duplicates (build the messages with Message)", ErrInvalidMessage, opts.UniqueKey, len(vs), t.typ, t.topic)
	}
	ms := make([]Message, len(vs))
	for i, v := range vs {
		m, err := t.Message(v, opts)
		if err != nil {
			return nil, fmt.Errorf("batch value %d: %w", i, err)
		}
		ms[i] = m
	}
	return t.p.PublishBatch(ctx, ms)
}
