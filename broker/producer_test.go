package broker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
)

// recordingBroker records what reaches the store; only Publish and
// PublishBatch are used by a Producer.
type recordingBroker struct {
	broker.Broker
	single, batches int
	got             []broker.Message
	fail            error
}

func (r *recordingBroker) Publish(_ context.Context, m broker.Message) (string, error) {
	r.single++
	if r.fail != nil {
		return "", r.fail
	}
	r.got = append(r.got, m)
	return "id-" + m.Topic, nil
}

func (r *recordingBroker) PublishBatch(_ context.Context, ms []broker.Message) ([]string, error) {
	r.batches++
	ids := make([]string, len(ms))
	for i, m := range ms {
		r.got = append(r.got, m)
		ids[i] = fmt.Sprintf("id-%d", i)
	}
	return ids, nil
}

func header(name, value string) broker.PublishMiddleware {
	return func(next broker.PublishFunc) broker.PublishFunc {
		return func(ctx context.Context, ms []broker.Message) ([]string, error) {
			for i := range ms {
				h := make(map[string]string, len(ms[i].Headers)+1)
				for k, v := range ms[i].Headers {
					h[k] = v
				}
				h[name] = h[name] + value
				ms[i].Headers = h
			}
			return next(ctx, ms)
		}
	}
}

func TestProducerRunsMiddlewareInOrder(t *testing.T) {
	rb := &recordingBroker{}
	p := broker.NewProducer(rb, header("trace", "a"), nil, header("trace", "b"))
	callerHeaders := map[string]string{"tenant": "acme"}
	id, err := p.Publish(context.Background(), broker.Message{Topic: "t", Headers: callerHeaders})
	if err != nil || id != "id-t" {
		t.Fatalf("Publish = %q, %v", id, err)
	}
	if got := rb.got[0].Headers; got["trace"] != "ab" || got["tenant"] != "acme" {
		t.Fatalf("headers = %v, want trace=ab (first middleware outermost), tenant kept", got)
	}
	if len(callerHeaders) != 1 {
		t.Fatalf("caller's map changed: %v", callerHeaders)
	}

	msgs := []broker.Message{{Topic: "x"}, {Topic: "y"}}
	ids, err := p.PublishBatch(context.Background(), msgs)
	if err != nil || strings.Join(ids, ",") != "id-0,id-1" {
		t.Fatalf("PublishBatch = %v, %v", ids, err)
	}
	if rb.single != 1 || rb.batches != 1 {
		t.Fatalf("single=%d batches=%d, want one of each", rb.single, rb.batches)
	}
	if msgs[0].Headers != nil {
		t.Fatal("PublishBatch modified the caller's slice")
	}
}

func TestProducerReturnsErrors(t *testing.T) {
	rb := &recordingBroker{fail: broker.ErrClosed}
	_, err := broker.NewProducer(rb).Publish(context.Background(), broker.Message{Topic: "t"})
	if !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("err = %v", err)
	}
}

func TestMessageDue(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := now.Add(time.Hour)
	tests := []struct {
		name string
		m    broker.Message
		want time.Time
	}{
		{"now", broker.Message{}, now},
		{"delay", broker.Message{Delay: time.Minute}, now.Add(time.Minute)},
		{"process at wins", broker.Message{Delay: time.Minute, ProcessAt: at}, at},
	}
	for _, tt := range tests {
		if got := tt.m.Due(now); !got.Equal(tt.want) {
			t.Errorf("%s: Due = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// publishOnly is a Publisher that is not a Broker: it records the messages.
type publishOnly struct{ got []broker.Message }

func (p *publishOnly) Publish(_ context.Context, m broker.Message) (string, error) {
	p.got = append(p.got, m)
	return m.Topic, nil
}

func (p *publishOnly) PublishBatch(_ context.Context, ms []broker.Message) ([]string, error) {
	ids := make([]string, len(ms))
	for i, m := range ms {
		p.got = append(p.got, m)
		ids[i] = m.Topic
	}
	return ids, nil
}

func TestProducerComposes(t *testing.T) {
	tests := []struct {
		name string
		p    func(*publishOnly) broker.Publisher
		want string // the trace header that reaches the store
	}{
		{"publisher that is not a broker", func(s *publishOnly) broker.Publisher {
			return broker.NewProducer(s, header("trace", "a"))
		}, "a"},
		{"producer over a producer, outer first", func(s *publishOnly) broker.Publisher {
			inner := broker.NewProducer(s, header("trace", "c"))
			return broker.NewProducer(inner, header("trace", "a"), header("trace", "b"))
		}, "abc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &publishOnly{}
			p := tt.p(store)
			if id, err := p.Publish(context.Background(), broker.Message{Topic: "one"}); err != nil || id != "one" {
				t.Fatalf("Publish = %q, %v", id, err)
			}
			ids, err := p.PublishBatch(context.Background(), []broker.Message{{Topic: "x"}, {Topic: "y"}})
			if err != nil || strings.Join(ids, ",") != "x,y" {
				t.Fatalf("PublishBatch = %v, %v", ids, err)
			}
			if len(store.got) != 3 {
				t.Fatalf("store got %d messages, want 3", len(store.got))
			}
			for _, m := range store.got {
				if m.Headers["trace"] != tt.want {
					t.Fatalf("%s: trace = %q, want %q", m.Topic, m.Headers["trace"], tt.want)
				}
			}
		})
	}
}

func TestProducerPublisher(t *testing.T) {
	store := &publishOnly{}
	if got := broker.NewProducer(store).Publisher(); got != broker.Publisher(store) {
		t.Fatalf("Publisher() = %v, want the Publisher given to NewProducer", got)
	}
}
