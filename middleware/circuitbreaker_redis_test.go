package middleware_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/redis"
	"github.com/conveyor-jobs/conveyor/internal/redistest"
	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/middleware"
	"github.com/conveyor-jobs/conveyor/server"
)

// TestCircuitBreakerOnRedis runs the breaker in a server on the Redis broker:
// while the downstream fails, three jobs trip the breaker; the jobs behind
// them are snoozed through Redis's delayed set for the breaker's timeout,
// spending no attempt; the downstream recovers as the breaker opens, so the
// breaker half-opens, closes, and every job succeeds.
func TestCircuitBreakerOnRedis(t *testing.T) {
	rs := redistest.Start(t)
	b, err := redis.Open(rs.URL(), &redis.Options{Namespace: rs.Namespace, Block: 50 * time.Millisecond, ClaimInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	var (
		mu       sync.Mutex
		healthy  bool
		failures int
		doneAt   = map[string]int{} // job ID → attempt it succeeded on
		states   []string
		opened   = make(chan struct{})
	)
	breakers := middleware.CircuitBreaker(&middleware.BreakerOptions{
		Settings: gobreaker.Settings{
			Timeout:     time.Second,
			ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 3 },
		},
		OnStateChange: func(_ string, from, to gobreaker.State) {
			mu.Lock() // never held here: state changes happen outside the handler
			defer mu.Unlock()
			states = append(states, to.String())
			if to == gobreaker.StateOpen && len(states) == 1 {
				healthy = true // the downstream recovers; the half-open trial will pass
				close(opened)
			}
		},
	})
	mux := job.NewMux()
	mux.Use(breakers)
	mux.HandleFunc("llm", func(_ context.Context, j *job.Job) error {
		mu.Lock()
		defer mu.Unlock()
		if !healthy {
			failures++
			return job.RetryIn(10*time.Millisecond, errors.New("model API: 503"))
		}
		doneAt[j.ID] = j.Attempt
		return nil
	})
	const n = 10
	ms := make([]broker.Message, n)
	for i := range ms {
		ms[i] = broker.Message{Topic: "llm", Payload: []byte("{}")}
	}
	ids, err := b.PublishBatch(context.Background(), ms)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(b, mux, &server.Options{Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- srv.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-runErr; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	select {
	case <-opened:
	case <-time.After(30 * time.Second):
		t.Fatal("the breaker never opened")
	}
	waitUntil(t, "every job to succeed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(doneAt) == n
	})

	mu.Lock()
	defer mu.Unlock()
	if srv.Stats().Snoozed == 0 {
		t.Error("no job was snoozed while the breaker was open")
	}
	if failures != 3 {
		t.Errorf("the handler failed %d times, want 3: an open breaker must not run jobs", failures)
	}
	retried := 0
	for _, id := range ids {
		switch doneAt[id] {
		case 1:
		case 2:
			retried++
		default:
			t.Errorf("job %s succeeded on attempt %d", id, doneAt[id])
		}
	}
	if retried != 3 {
		t.Errorf("%d jobs succeeded on attempt 2, want the 3 that failed; snoozed jobs spend no attempt", retried)
	}
	if len(states) < 3 || states[0] != "open" || states[1] != "half-open" || states[len(states)-1] != "closed" {
		t.Errorf("breaker states %v, want open, half-open, …, closed", states)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
