package prometheus_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	conveyorprom "github.com/conveyor-jobs/conveyor/contrib/prometheus"
	"github.com/conveyor-jobs/conveyor/middleware"
)

// countingRecorder records Count calls.
type countingRecorder struct {
	calls []string
}

func (r *countingRecorder) Count(topic string, e middleware.Event, n int) {
	r.calls = append(r.calls, fmt.Sprintf("%s %s %d", topic, e, n))
}

func (r *countingRecorder) ObserveDuration(string, string, time.Duration) {}

func TestCountPublished(t *testing.T) {
	errStore := errors.New("store down")
	msgs := func(topics ...string) []broker.Message {
		ms := make([]broker.Message, len(topics))
		for i, topic := range topics {
			ms[i] = broker.Message{Topic: topic}
		}
		return ms
	}
	tests := []struct {
		name  string
		ms    []broker.Message
		ids   []string
		err   error
		calls []string
	}{
		{"one", msgs("a"), []string{"1"}, nil, []string{"a enqueued 1"}},
		{"runs of a topic are counted at once", msgs("a", "a", "b", "a"), []string{"1", "2", "3", "4"}, nil,
			[]string{"a enqueued 2", "b enqueued 1", "a enqueued 1"}},
		{"failure counts nothing", msgs("a", "a"), nil, errStore, nil},
		{"partial failure counts the IDs returned", msgs("a", "b", "b"), []string{"1", "2"}, errStore,
			[]string{"a enqueued 1", "b enqueued 1"}},
		{"empty IDs are not counted", msgs("a", "a", "a"), []string{"1", "", "3"}, errStore,
			[]string{"a enqueued 2"}},
		{"duplicates are not counted", msgs("a", "a", "b"), []string{"1", "1", "3"},
			&broker.BatchError{Duplicates: []int{1}, Err: &broker.DuplicateError{Topic: "a", Key: "k", ID: "1"}},
			[]string{"a enqueued 1", "b enqueued 1"}},
		{"a duplicate alone counts nothing", msgs("a"), []string{"1"},
			&broker.BatchError{Duplicates: []int{0}, Err: &broker.DuplicateError{Topic: "a", Key: "k", ID: "1"}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &countingRecorder{}
			publish := conveyorprom.CountPublished(rec)(func(context.Context, []broker.Message) ([]string, error) {
				return tt.ids, tt.err
			})
			ids, err := publish(context.Background(), tt.ms)
			if !errors.Is(err, tt.err) || len(ids) != len(tt.ids) {
				t.Fatalf("publish = %v, %v; want %v, %v", ids, err, tt.ids, tt.err)
			}
			if fmt.Sprint(rec.calls) != fmt.Sprint(tt.calls) {
				t.Errorf("Count calls = %q, want %q", rec.calls, tt.calls)
			}
		})
	}
}

func TestCountPublishedThroughProducer(t *testing.T) {
	rec, reg := newRecorder(t, nil)
	p := broker.NewProducer(newFakeBroker(), conveyorprom.CountPublished(rec))
	ctx := context.Background()
	for range 3 {
		if _, err := p.Publish(ctx, broker.Message{Topic: "orchestrate", Payload: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.PublishBatch(ctx, []broker.Message{{Topic: "emails"}, {Topic: "emails"}, {Topic: "orchestrate"}}); err != nil {
		t.Fatal(err)
	}
	const want = `
# HELP conveyor_jobs_enqueued_total Jobs published, by topic.
# TYPE conveyor_jobs_enqueued_total counter
conveyor_jobs_enqueued_total{topic="emails"} 2
conveyor_jobs_enqueued_total{topic="orchestrate"} 4
`
	gatherAndCompare(t, reg, want, "conveyor_jobs_enqueued_total")
}
