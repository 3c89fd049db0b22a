package main

import (
	"strings"
	"testing"

	"github.com/conveyor-jobs/conveyor/broker/redis"
	"github.com/conveyor-jobs/conveyor/broker/redis/redistest"
)

func TestRun(t *testing.T) {
	srv := redistest.Start(t)
	var out strings.Builder
	if err := run(t.Context(), srv.URL(), srv.Namespace, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"published ", "scheduled ", "published a batch of 100 jobs"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}

	b, err := redis.Open(srv.URL(), &redis.Options{Namespace: srv.Namespace})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	info, err := b.Inspect(t.Context(), "orchestrate")
	if err != nil {
		t.Fatal(err)
	}
	if info.Length != 101 || info.Delayed != 1 {
		t.Fatalf("stream holds %d jobs and %d delayed, want 101 and 1", info.Length, info.Delayed)
	}
}

func TestRunWithoutURL(t *testing.T) {
	if err := run(t.Context(), "", "", &strings.Builder{}); err == nil || !strings.Contains(err.Error(), "REDIS_URL") {
		t.Fatalf("run = %v", err)
	}
}
