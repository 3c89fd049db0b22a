package bench

import (
	"bytes"
	"context"
	"testing"

	"github.com/conveyor-jobs/conveyor/broker/redis/redistest"
)

func TestRunAllScenarios(t *testing.T) {
	srv := redistest.Start(t)
	var progress bytes.Buffer
	rep, err := Run(context.Background(), Config{N: 2000, Runs: 1, RedisURL: srv.URL(), Progress: &progress, Rate: 5000, Concurrency: 16})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(progress.String())
	var out bytes.Buffer
	_ = rep.WriteTable(&out)
	t.Log(out.String())
}
