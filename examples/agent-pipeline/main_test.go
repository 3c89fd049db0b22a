package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/conveyor-jobs/conveyor/broker/redis/redistest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func checkOutput(t *testing.T, out string) {
	t.Helper()
	for _, want := range []string{
		`orchestrate: "write a launch post" planned 3 steps as batch pipeline-`,
		`aggregate: "write a launch post": 3 of 3 steps succeeded, 0 dead`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, want := range []string{`  research: research done for "write a launch post"`, `  draft: draft done`, `  review: review done`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "aggregate:") != 1 {
		t.Errorf("the aggregate ran %d times", strings.Count(out, "aggregate:"))
	}
}

// TestRunMemory runs the pipeline on the memory broker.
func TestRunMemory(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, func(string) (string, bool) { return "", false }, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	checkOutput(t, out.String())
}

// TestRunRedis runs the pipeline on a throwaway Redis.
func TestRunRedis(t *testing.T) {
	srv := redistest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	env := map[string]string{"REDIS_URL": srv.URL(), "REDIS_NAMESPACE": srv.Namespace}
	var out bytes.Buffer
	if err := run(ctx, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	checkOutput(t, out.String())
}
