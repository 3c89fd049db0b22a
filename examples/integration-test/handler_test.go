package integrationtest_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/redis"
	"github.com/conveyor-jobs/conveyor/broker/redis/redistest"
	integrationtest "github.com/conveyor-jobs/conveyor/examples/integration-test"
	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/middleware"
	"github.com/conveyor-jobs/conveyor/retry"
	"github.com/conveyor-jobs/conveyor/server"
)

// fakeModel stands in for the language model (your dependency, not Redis:
// Redis is real). It fails the first failFirst calls.
type fakeModel struct {
	calls     atomic.Int32
	failFirst int32
}

func TestMain(m *testing.M) {
	// The server's goroutines must all be gone when the tests end.
	goleak.VerifyTestMain(m)
}

func (m *fakeModel) Summarise(_ context.Context, text string) (string, error) {
	if m.calls.Add(1) <= m.failFirst {
		return "", errors.New("model overloaded")
	}
	return "summary of " + strings.ToUpper(text), nil
}

// startWorker runs handler h on topic "summarise" against Redis srv, with
// the recommended middleware and quick retries, until the test ends. It
// returns the broker, for publishing and inspecting.
func startWorker(t *testing.T, srv *redistest.Server, h job.Handler) *redis.Broker {
	t.Helper()
	// Namespace isolates this test's keys, even on a shared Redis. Short
	// Block and ClaimInterval make delayed retries come back in
	// milliseconds instead of about two seconds.
	b, err := redis.Open(srv.URL(), &redis.Options{
		Namespace:     srv.Namespace,
		Consumer:      t.Name(),
		Block:         50 * time.Millisecond,
		ClaimInterval: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := job.NewMux()
	mux.Use(middleware.Default(&middleware.DefaultOptions{
		// Retry after 10ms instead of 5s: tests should not wait.
		Retry: &retry.Policy{Schedule: []time.Duration{10 * time.Millisecond}, MaxAttempts: 3},
	}))
	mux.Handle("summarise", h)
	s, err := server.New(b, mux, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
		b.Close()
	})
	return b
}

// eventually polls cond until it holds or 10 seconds pass. Tests wait on
// conditions, never on fixed sleeps.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func publish(t *testing.T, b broker.Publisher, payload string) {
	t.Helper()
	if _, err := b.Publish(t.Context(), broker.Message{Topic: "summarise", Payload: []byte(payload)}); err != nil {
		t.Fatal(err)
	}
}

func TestSummariseSucceedsAfterARetry(t *testing.T) {
	srv := redistest.Start(t) // a fresh Redis (container, redis-server, or REDIS_URL)
	model := &fakeModel{failFirst: 1}
	var out integrationtest.Summaries
	b := startWorker(t, srv, integrationtest.NewHandler(model, &out))

	publish(t, b, `{"document_id":"d1","text":"quarterly report"}`)

	eventually(t, "the summary", func() bool { _, ok := out.Get("d1"); return ok })
	if got, _ := out.Get("d1"); got != "summary of QUARTERLY REPORT" {
		t.Errorf("summary = %q", got)
	}
	if n := model.calls.Load(); n != 2 {
		t.Errorf("model called %d times, want 2 (one failure, one retry)", n)
	}
	// Nothing is left behind: the job was acknowledged and deleted.
	eventually(t, "an empty stream", func() bool {
		info, err := b.Inspect(t.Context(), "summarise")
		return err == nil && info.Length == 0 && info.Pending == 0 && info.DeadLetters == 0
	})
}

func TestEmptyDocumentIsDeadLettered(t *testing.T) {
	srv := redistest.Start(t)
	model := &fakeModel{}
	b := startWorker(t, srv, integrationtest.NewHandler(model, &integrationtest.Summaries{}))

	publish(t, b, `{"document_id":"d2","text":""}`)

	var dls []broker.DeadLetter
	eventually(t, "a dead letter", func() bool {
		var err error
		dls, err = b.DeadLetters(t.Context(), "summarise", "", 10)
		return err == nil && len(dls) == 1
	})
	f := dls[0].Job.Failure
	if f.Reason != job.ReasonPermanent || !strings.Contains(f.Error, integrationtest.ErrEmpty.Error()) || dls[0].Job.Attempt != 1 {
		t.Errorf("dead letter: attempt %d, failure %+v", dls[0].Job.Attempt, f)
	}
	if model.calls.Load() != 0 {
		t.Error("the model must not be called for an empty document")
	}
}
