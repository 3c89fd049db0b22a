package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []string{
		"a1: done for acme on attempt 1",
		`msg="job will be retried" job_id=a2 topic=agent attempt=1 outcome=retry delay=50ms error="retry in 50ms: tool call failed"`,
		"a2: done for acme on attempt 2",
		`a3: dead-lettered: reason=permanent handler=agent-handler error="tenant over quota: acme may run 2 jobs"`,
		"t1: done for trial on attempt 1",
		`anon: dead-lettered: reason=permanent handler=agent-handler error="job has no tenant header"`,
		"all jobs accounted for",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", got)
	}
}
