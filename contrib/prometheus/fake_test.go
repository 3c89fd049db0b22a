package prometheus_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/job"
)

// fakeBroker is a broker.Broker and broker.Inspector that only stores what
// it is told, counts the calls made to it, and can be made to fail.
type fakeBroker struct {
	mu    sync.Mutex
	infos map[string]*broker.TopicInfo
	fail  map[string]error // topic ("" for Topics) -> error to return
	calls int
	next  int
	// block makes Inspect wait for its ctx to end.
	block bool
}

var (
	_ broker.Broker    = (*fakeBroker)(nil)
	_ broker.Inspector = (*fakeBroker)(nil)
)

func newFakeBroker() *fakeBroker {
	return &fakeBroker{infos: map[string]*broker.TopicInfo{}, fail: map[string]error{}}
}

// set replaces the info of topic.
func (b *fakeBroker) set(info broker.TopicInfo) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.infos[info.Topic] = &info
}

// failWith makes calls about topic ("" for Topics) fail with err, or
// succeed again when err is nil.
func (b *fakeBroker) failWith(topic string, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err == nil {
		delete(b.fail, topic)
		return
	}
	b.fail[topic] = err
}

func (b *fakeBroker) remove(topic string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.infos, topic)
}

// callCount returns how many calls were made to b.
func (b *fakeBroker) callCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls
}

func (b *fakeBroker) Topics(ctx context.Context) ([]string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls++
	if err := b.fail[""]; err != nil {
		return nil, err
	}
	var ts []string
	for t := range b.infos {
		ts = append(ts, t)
	}
	slices.Sort(ts)
	return ts, nil
}

func (b *fakeBroker) Inspect(ctx context.Context, topic string) (*broker.TopicInfo, error) {
	b.mu.Lock()
	b.calls++
	block := b.block
	b.mu.Unlock()
	if block {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.fail[topic]; err != nil {
		return nil, err
	}
	info, ok := b.infos[topic]
	if !ok {
		return nil, broker.ErrNotFound
	}
	c := *info
	return &c, nil
}

func (b *fakeBroker) Publish(ctx context.Context, m broker.Message) (string, error) {
	ids, err := b.PublishBatch(ctx, []broker.Message{m})
	if err != nil {
		return "", err
	}
	return ids[0], nil
}

func (b *fakeBroker) PublishBatch(ctx context.Context, ms []broker.Message) ([]string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls++
	ids := make([]string, len(ms))
	for i, m := range ms {
		if m.Topic == "" {
			return ids[:i], broker.ErrInvalidMessage
		}
		b.next++
		ids[i] = fmt.Sprint(b.next)
	}
	return ids, nil
}

var errUnsupported = errors.New("fake broker: unsupported")

func (b *fakeBroker) Fetch(context.Context, []string, int) ([]*broker.Delivery, error) {
	return nil, errUnsupported
}
func (b *fakeBroker) Ack(context.Context, ...*broker.Delivery) error { return errUnsupported }
func (b *fakeBroker) Retry(context.Context, *broker.Delivery, time.Duration, job.Failure) error {
	return errUnsupported
}
func (b *fakeBroker) Snooze(context.Context, *broker.Delivery, time.Duration) error {
	return errUnsupported
}
func (b *fakeBroker) DeadLetter(context.Context, *broker.Delivery, job.Failure) error {
	return errUnsupported
}
func (b *fakeBroker) Extend(context.Context, ...*broker.Delivery) error { return errUnsupported }
func (b *fakeBroker) Lease() time.Duration                              { return time.Minute }
func (b *fakeBroker) Close() error                                      { return nil }
