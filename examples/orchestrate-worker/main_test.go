package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/redis"
	"github.com/conveyor-jobs/conveyor/broker/redis/redistest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestRun runs the worker against a throwaway Redis: a valid job is
// acknowledged, an invalid one is dead-lettered at once, /readyz answers, and
// cancelling the context (what SIGTERM does) stops it cleanly.
func TestRun(t *testing.T) {
	srv := redistest.Start(t)
	env := map[string]string{"REDIS_URL": srv.URL(), "REDIS_NAMESPACE": srv.Namespace, "REDIS_CONSUMER": "test", "METRICS_ADDR": "127.0.0.1:0"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }

	b, err := redis.Open(srv.URL(), &redis.Options{Namespace: srv.Namespace, Consumer: "producer"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, p := range []string{`{"prompt":"plan a trip","steps":3}`, `{"prompt":""}`} {
		if _, err := b.Publish(t.Context(), broker.Message{Topic: "orchestrate", Payload: []byte(p), Headers: map[string]string{"tenant": "acme"}}); err != nil {
			t.Fatal(err)
		}
	}

	ctx, cancel := context.WithCancel(t.Context())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, lookup, slog.New(slog.NewTextHandler(io.Discard, nil)), ready) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("run: %v", err)
	}

	deadline := time.Now().Add(15 * time.Second)
	for {
		info, err := b.Inspect(t.Context(), "orchestrate")
		if err != nil {
			t.Fatal(err)
		}
		if info.Length == 0 && info.DeadLetters == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("jobs not settled: %+v", info)
		}
		time.Sleep(20 * time.Millisecond)
	}
	dls, err := b.DeadLetters(t.Context(), "orchestrate", "", 10)
	if err != nil || len(dls) != 1 || dls[0].Job.Failure.Reason != "permanent" {
		t.Fatalf("dead letters = %+v, %v", dls, err)
	}
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/readyz = %d", resp.StatusCode)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run after cancel: %v", err)
	}
}

func TestRunDiagnosesConnectionErrors(t *testing.T) {
	lookup := func(k string) (string, bool) {
		if k == "REDIS_URL" {
			return "redis://no-such-host.invalid:6379/0", true
		}
		return "", false
	}
	err := run(t.Context(), lookup, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err == nil || !strings.Contains(err.Error(), "what to do: the host name") {
		t.Fatalf("run = %v", err)
	}
}
