package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/job"
)

// TestDLQShowStack: the dead letter of a panicking handler shows its stack,
// apart from the one-line error, in text and in JSON.
func TestDLQShowStack(t *testing.T) {
	const stack = "goroutine 7 [running]:\nmain.charge(...)\n\t/src/charge.go:12 +0x1d\n"
	dl := &broker.DeadLetter{ID: "1-0", Job: job.Job{ID: "j", Topic: "payments.dlq", Attempt: 4, Payload: []byte(`{}`),
		Failure: &job.Failure{Error: "conveyor: handler panicked: boom [at main.charge (charge.go:12)]", Reason: job.ReasonPanic,
			Origin: "payments", At: time.Unix(0, 0), Stack: stack}}}
	var out bytes.Buffer
	printDeadLetter(&app{stdout: &out}, dl)
	want := "stack:\n  goroutine 7 [running]:\n  main.charge(...)\n  \t/src/charge.go:12 +0x1d\npayload:"
	if !strings.Contains(out.String(), want) {
		t.Errorf("dlq show printed\n%s\nwant it to contain\n%s", out.String(), want)
	}
	b, err := json.Marshal(viewOf(&dl.Job))
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Failure struct {
			Stack string `json:"stack"`
		} `json:"failure"`
	}
	if err := json.Unmarshal(b, &v); err != nil || v.Failure.Stack != stack {
		t.Errorf("JSON %s: stack %q, want %q (%v)", b, v.Failure.Stack, stack, err)
	}

	dl.Job.Failure.Stack = ""
	out.Reset()
	printDeadLetter(&app{stdout: &out}, dl)
	if strings.Contains(out.String(), "stack") {
		t.Errorf("dlq show printed a stack for a failure without one:\n%s", out.String())
	}
}
