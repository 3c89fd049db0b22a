package server_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/server"
)

// recordTopics is a handler that records the topic of the first n jobs it
// runs.
type recordTopics struct {
	mu  sync.Mutex
	n   int
	got []string
}

func (r *recordTopics) ProcessJob(_ context.Context, j *job.Job) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.got) < r.n {
		r.got = append(r.got, j.Topic)
	}
	return nil
}

func (r *recordTopics) done() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got) == r.n
}

func (r *recordTopics) counts() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for _, t := range r.got {
		out[t]++
	}
	return out
}

// backlog publishes n jobs to each topic.
func backlog(t *testing.T, b broker.Broker, n int, topics ...string) {
	t.Helper()
	var ms []broker.Message
	for _, topic := range topics {
		for i := range n {
			ms = append(ms, broker.Message{Topic: topic, Payload: fmt.Appendf(nil, "%d", i)})
		}
	}
	if _, err := b.PublishBatch(context.Background(), ms); err != nil {
		t.Fatal(err)
	}
}

// TestPrioritiesWeighted: with a backlog in every topic, the jobs the
// server processes follow Options.Priorities within 10 %, with one worker
// or several.
func TestPrioritiesWeighted(t *testing.T) {
	for _, conc := range []int{1, 4} {
		t.Run(fmt.Sprint("concurrency ", conc), func(t *testing.T) {
			b := newBroker(t)
			backlog(t, b, 200, "critical", "default", "low")
			h := &recordTopics{n: 120}
			start(t, b, h, &server.Options{
				Topics:      []string{"critical", "default", "low"},
				Priorities:  map[string]int{"critical": 3, "default": 2},
				Concurrency: conc,
			})
			waitFor(t, "120 jobs", h.done)
			got := h.counts()
			for topic, w := range map[string]int{"critical": 3, "default": 2, "low": 1} {
				want := 120 * float64(w) / 6
				if math.Abs(float64(got[topic])-want) > 0.1*want {
					t.Errorf("%s (weight %d): %d of 120 jobs, want %.0f ±10%% (all: %v)", topic, w, got[topic], want, got)
				}
			}
		})
	}
}

// TestPrioritiesStrict: with StrictPriority, no job of a lower topic runs
// while a higher one has jobs ready.
func TestPrioritiesStrict(t *testing.T) {
	b := newBroker(t)
	backlog(t, b, 30, "high", "mid", "low")
	h := &recordTopics{n: 90}
	start(t, b, h, &server.Options{
		Topics:         []string{"low", "mid", "high"},
		Priorities:     map[string]int{"high": 3, "mid": 2, "low": 1},
		StrictPriority: true,
		Concurrency:    1,
	})
	waitFor(t, "90 jobs", h.done)
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, want := range []string{"high", "mid", "low"} {
		for _, got := range h.got[30*i : 30*(i+1)] {
			if got != want {
				t.Fatalf("jobs %d-%d: got a %s job, want only %s (order: %v)", 30*i, 30*(i+1)-1, got, want, h.got)
			}
		}
	}
}

// TestPrioritiesFallback: a broker without broker.PriorityFetcher is
// fetched in turn, with a warning at start.
func TestPrioritiesFallback(t *testing.T) {
	b := newBroker(t)
	backlog(t, b, 5, "a", "b")
	logs := &logRecorder{}
	h := &recordTopics{n: 10}
	start(t, &wrapped{Broker: b}, h, &server.Options{
		Topics:     []string{"a", "b"},
		Priorities: map[string]int{"a": 5},
		Logger:     slogNew(logs),
	})
	waitFor(t, "10 jobs", h.done)
	if n := logs.count("conveyor: the broker cannot fetch by priority"); n != 1 {
		t.Fatalf("%d warnings that priorities are ignored, want 1", n)
	}
}

func TestPrioritiesRejected(t *testing.T) {
	noop := job.HandlerFunc(func(context.Context, *job.Job) error { return nil })
	for name, p := range map[string]map[string]int{
		"unknown topic":   {"other": 2},
		"negative weight": {"t": -1},
	} {
		_, err := server.New(newBroker(t), noop, &server.Options{Topics: []string{"t"}, Priorities: p})
		if !errors.Is(err, server.ErrInvalidOptions) {
			t.Errorf("%s: New: %v, want ErrInvalidOptions", name, err)
		}
	}
}
