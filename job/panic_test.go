package job_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/job"
)

func panicking(i int) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = job.NewPanicError(v)
		}
	}()
	var s []int
	s[i]++ // panics: index out of range
	return nil
}

func TestPanicErrorFailure(t *testing.T) {
	err := panicking(0)
	var pe *job.PanicError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %T %v", err, err)
	}
	if got, want := err.Error(), "conveyor: handler panicked: runtime error: index out of range [0] with length 0"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	frames := pe.Frames(2)
	if len(frames) != 2 || !strings.HasPrefix(frames[0], "github.com/conveyor-jobs/conveyor/job_test.panicking (panic_test.go:") ||
		!strings.HasPrefix(frames[1], "github.com/conveyor-jobs/conveyor/job_test.TestPanicErrorFailure (panic_test.go:") {
		t.Errorf("Frames(2) = %q, want the panic site and its caller", frames)
	}

	// Wrapped as the retry policy does on the last attempt.
	final := &job.PermanentError{Err: fmt.Errorf("%w after 4 attempts: %w", job.ErrRetriesExhausted, err), Reason: job.ReasonPanic}
	f := job.FailureOf(&job.Job{Topic: "t"}, final, job.ReasonError, time.Time{})
	if strings.Contains(f.Error, "\n") || strings.Contains(f.Error, "goroutine") {
		t.Errorf("Failure.Error holds the stack: %q", f.Error)
	}
	if !strings.Contains(f.Error, "conveyor: handler panicked: runtime error: index out of range [0] with length 0 [at github.com/conveyor-jobs/conveyor/job_test.panicking (panic_test.go:") {
		t.Errorf("Failure.Error = %q, want the panic value then the top frames", f.Error)
	}
	if f.Stack != string(pe.Stack) || !strings.HasPrefix(f.Stack, "goroutine ") {
		t.Errorf("Failure.Stack = %q, want the panic's stack", f.Stack)
	}
	if f.Reason != job.ReasonPanic {
		t.Errorf("Reason = %q", f.Reason)
	}

	plain := job.FailureOf(&job.Job{Topic: "t"}, errors.New("boom"), job.ReasonError, time.Time{})
	if plain.Stack != "" || plain.Error != "boom" {
		t.Errorf("plain failure = %+v", plain)
	}
}

func TestPanicErrorFramesWithoutPanic(t *testing.T) {
	pe := &job.PanicError{Value: 1, Stack: []byte("goroutine 1 [running]:\nmain.main()\n\t/x.go:3 +0x1\n")}
	if fs := pe.Frames(3); fs != nil {
		t.Errorf("Frames = %q, want none for a stack without a panic", fs)
	}
	if pe.Unwrap() != nil {
		t.Errorf("Unwrap of a non-error value = %v", pe.Unwrap())
	}
}
