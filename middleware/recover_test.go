package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/middleware"
)

var errBoom = errors.New("boom")

func TestRecover(t *testing.T) {
	tests := []struct {
		name      string
		h         job.HandlerFunc
		wantPanic any
		wantErr   error
	}{
		{"nil passes", func(context.Context, *job.Job) error { return nil }, nil, nil},
		{"error passes", func(context.Context, *job.Job) error { return errBoom }, nil, errBoom},
		{"panic string", func(context.Context, *job.Job) error { panic("kaput") }, "kaput", nil},
		{"panic error unwraps", func(context.Context, *job.Job) error { panic(errBoom) }, errBoom, errBoom},
		{"runtime error", func(_ context.Context, j *job.Job) error {
			parts := strings.Split(j.ID, ":")
			return errors.New(parts[1])
		}, "index out of range [1] with length 1", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hooked *job.PanicError
			mw := middleware.Recover(&middleware.RecoverOptions{
				OnPanic: func(_ context.Context, j *job.Job, p *job.PanicError) {
					if j.ID != "j1" {
						t.Errorf("OnPanic got job %q", j.ID)
					}
					hooked = p
				},
			})
			err := run(t, mw, tt.h, &job.Job{ID: "j1", Topic: "t", Attempt: 1})
			var pe *job.PanicError
			if tt.wantPanic == nil {
				if !errors.Is(err, tt.wantErr) || errors.As(err, &pe) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if hooked != nil {
					t.Fatal("OnPanic called without a panic")
				}
				return
			}
			if !errors.As(err, &pe) {
				t.Fatalf("err = %T %v, want *PanicError", err, err)
			}
			if hooked != pe {
				t.Error("OnPanic did not receive the returned *PanicError")
			}
			if s, ok := tt.wantPanic.(string); ok {
				if !strings.Contains(fmt.Sprint(pe.Value), s) {
					t.Errorf("Value = %v, want %q", pe.Value, s)
				}
			} else if pe.Value != tt.wantPanic {
				t.Errorf("Value = %v, want %v", pe.Value, tt.wantPanic)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("errors.Is(err, %v) = false", tt.wantErr)
			}
			if !strings.Contains(string(pe.Stack), "recover_test.go") {
				t.Errorf("stack does not show the panicking frame:\n%s", pe.Stack)
			}
			if !strings.HasPrefix(err.Error(), "conveyor: handler panicked: ") {
				t.Errorf("Error() = %q", err.Error())
			}
			if o, _ := job.Classify(err); o != job.OutcomeFail {
				t.Errorf("Classify = %v, want fail (left to the retry policy)", o)
			}
		})
	}
}

func TestRecoverNilOptions(t *testing.T) {
	err := run(t, middleware.Recover(nil), func(context.Context, *job.Job) error { panic(1) }, &job.Job{})
	var pe *job.PanicError
	if !errors.As(err, &pe) || pe.Value != 1 {
		t.Fatalf("err = %v", err)
	}
	if pe.Unwrap() != nil {
		t.Errorf("Unwrap of a non-error value = %v, want nil", pe.Unwrap())
	}
}

func ExampleRecover() {
	h := middleware.Recover(nil)(job.HandlerFunc(func(ctx context.Context, j *job.Job) error {
		tenant := strings.Split(j.ID, ":")[1] // panics: the ID has no ":"
		return process(ctx, tenant)
	}))
	err := h.ProcessJob(context.Background(), &job.Job{ID: "42", Topic: "orchestrate", Attempt: 1})
	var pe *job.PanicError
	fmt.Println(errors.As(err, &pe))
	fmt.Println(err)
	// Output:
	// true
	// conveyor: handler panicked: runtime error: index out of range [1] with length 1
}

func process(context.Context, string) error { return nil }
