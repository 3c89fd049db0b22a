package main

import (
	"bytes"
	"context"
	"errors"
	"slices"
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
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	want := []string{
		"good: published to orchestrate",
		"flaky: published to orchestrate",
		"bad: published to orchestrate",
		`good: done on attempt 1 (prompt "summarise the incident")`,
		"flaky: attempt 1 failed (model timed out), retrying in 200ms",
		`bad: dead-lettered from orchestrate: reason=undecodable error=conveyor: cannot decode payload of topic "orchestrate" into main.Task: invalid character 'n' looking for beginning of object key string`,
		`flaky: done on attempt 2 (prompt "flaky")`,
		"all jobs accounted for",
	}
	// Jobs run concurrently: compare as sets, then check the order that is
	// guaranteed.
	if got, w := slices.Sorted(slices.Values(lines)), slices.Sorted(slices.Values(want)); !slices.Equal(got, w) {
		t.Fatalf("output:\n%s\nwant these lines in any order:\n%s", out.String(), strings.Join(want, "\n"))
	}
	before := func(a, b string) {
		t.Helper()
		if slices.Index(lines, a) > slices.Index(lines, b) {
			t.Errorf("%q printed after %q", a, b)
		}
	}
	before(want[2], want[3]) // every job is published before the server starts
	before(want[4], want[6]) // the flaky job fails, then succeeds
	if lines[len(lines)-1] != "all jobs accounted for" {
		t.Errorf("last line %q", lines[len(lines)-1])
	}
}

func TestRunTimesOut(t *testing.T) {
	// The flaky job cannot finish before its 200ms retry delay.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, &out); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("run: %v, want a timeout", err)
	}
}
