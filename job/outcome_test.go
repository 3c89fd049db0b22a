package job_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/job"
)

var testTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestClassify(t *testing.T) {
	cause := errors.New("boom")
	tests := []struct {
		name  string
		err   error
		want  job.Outcome
		delay time.Duration
	}{
		{"nil acks", nil, job.OutcomeAck, 0},
		{"plain error fails", cause, job.OutcomeFail, 0},
		{"retry", job.RetryIn(5*time.Second, cause), job.OutcomeRetry, 5 * time.Second},
		{"negative retry delay is now", job.RetryIn(-time.Second, cause), job.OutcomeRetry, 0},
		{"snooze", job.Snooze(time.Minute), job.OutcomeSnooze, time.Minute},
		{"permanent", job.Permanent(cause), job.OutcomeDeadLetter, 0},
		{"wrapped permanent", fmt.Errorf("ctx: %w", job.Permanent(cause)), job.OutcomeDeadLetter, 0},
		{"outermost wins", job.Permanent(job.RetryIn(time.Second, cause)), job.OutcomeDeadLetter, 0},
		{"retry of permanent retries", job.RetryIn(time.Second, job.Permanent(cause)), job.OutcomeRetry, time.Second},
		{"joined", errors.Join(cause, job.Snooze(time.Second)), job.OutcomeSnooze, time.Second},
		{"joined plain", errors.Join(cause, io.EOF), job.OutcomeFail, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, d := job.Classify(tt.err)
			if o != tt.want || d != tt.delay {
				t.Fatalf("Classify = %v, %v; want %v, %v", o, d, tt.want, tt.delay)
			}
		})
	}
}

func TestOutcomeErrorsUnwrap(t *testing.T) {
	cause := io.ErrUnexpectedEOF
	for _, err := range []error{job.RetryIn(time.Second, cause), job.Permanent(cause), job.SnoozeBecause(time.Second, cause)} {
		if !errors.Is(err, cause) {
			t.Errorf("%T does not unwrap to its cause", err)
		}
	}
	if !errors.Is(job.Snooze(time.Second), job.ErrSnoozed) {
		t.Error("Snooze is not ErrSnoozed")
	}
	var re *job.RetryError
	if !errors.As(fmt.Errorf("x: %w", job.RetryIn(time.Second, nil)), &re) || re.Delay != time.Second {
		t.Error("errors.As RetryError failed")
	}
	for _, s := range []string{job.Permanent(nil).Error(), job.RetryIn(time.Second, nil).Error(), job.Snooze(time.Second).Error()} {
		if !strings.HasPrefix(s, "conveyor: ") {
			t.Errorf("error text %q lacks the package prefix", s)
		}
	}
	if got := job.OutcomeDeadLetter.String(); got != "dead-letter" {
		t.Errorf("String() = %q", got)
	}
}

func TestFailureOf(t *testing.T) {
	j := &job.Job{Topic: "orchestrate"}
	tests := []struct {
		name     string
		err      error
		fallback string
		reason   string
	}{
		{"plain uses fallback", errors.New("x"), job.ReasonError, job.ReasonError},
		{"permanent", job.Permanent(errors.New("x")), job.ReasonError, job.ReasonPermanent},
		{"permanent with reason", &job.PermanentError{Err: errors.New("x"), Reason: "custom"}, job.ReasonError, "custom"},
		{"exhausted", job.Permanent(fmt.Errorf("%w: x", job.ErrRetriesExhausted)), job.ReasonError, job.ReasonExhausted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := job.FailureOf(j, tt.err, tt.fallback, testTime)
			if f.Reason != tt.reason || f.Origin != "orchestrate" || !f.At.Equal(testTime) || !strings.Contains(f.Error, "x") {
				t.Fatalf("FailureOf = %+v, want reason %q", f, tt.reason)
			}
		})
	}
}

type task struct {
	Prompt string `json:"prompt"`
}

func TestTypedDecodes(t *testing.T) {
	var got task
	h := job.Typed(func(_ context.Context, v task, _ *job.Job) error {
		got = v
		return nil
	})
	if err := h.ProcessJob(context.Background(), &job.Job{Topic: "t", Payload: []byte(`{"prompt":"hi"}`)}); err != nil {
		t.Fatal(err)
	}
	if got.Prompt != "hi" {
		t.Fatalf("decoded %+v", got)
	}
}

func TestTypedUndecodableIsPermanent(t *testing.T) {
	called := false
	h := job.Typed(func(context.Context, task, *job.Job) error {
		called = true
		return nil
	})
	for _, payload := range []string{"{not json", "", `"a string"`, "\x00\xff"} {
		err := h.ProcessJob(context.Background(), &job.Job{Topic: "orchestrate", Payload: []byte(payload)})
		var de *job.DecodeError
		if !errors.As(err, &de) {
			t.Fatalf("payload %q: err = %v, want DecodeError", payload, err)
		}
		if o, _ := job.Classify(err); o != job.OutcomeDeadLetter {
			t.Fatalf("payload %q: outcome %v, want dead-letter", payload, o)
		}
		f := job.FailureOf(&job.Job{Topic: "orchestrate"}, err, job.ReasonError, testTime)
		if f.Reason != job.ReasonUndecodable || !strings.Contains(f.Handler, "job_test.task") {
			t.Fatalf("payload %q: failure %+v", payload, f)
		}
	}
	if called {
		t.Fatal("handler ran on an undecodable payload")
	}
}

type upper struct{}

func (upper) Marshal(v any) ([]byte, error) { return []byte(fmt.Sprint(v)), nil }
func (upper) Unmarshal(data []byte, v any) error {
	p, ok := v.(*string)
	if !ok {
		return errors.New("want *string")
	}
	*p = strings.ToUpper(string(data))
	return nil
}

func TestTypedWithCodec(t *testing.T) {
	var got string
	h := job.TypedWith(upper{}, func(_ context.Context, v string, _ *job.Job) error {
		got = v
		return nil
	})
	if err := h.ProcessJob(context.Background(), &job.Job{Payload: []byte("abc")}); err != nil || got != "ABC" {
		t.Fatalf("got %q, %v", got, err)
	}
}

// TestFailureOfText checks that the recorded error is the failure's text,
// without the words of the outcome that wraps it ("retry in 288ms: ").
func TestFailureOfText(t *testing.T) {
	boom := errors.New("upstream 503")
	j := &job.Job{Topic: "t"}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"retry in", job.RetryIn(288*time.Millisecond, boom), "upstream 503"},
		{"permanent retry in", job.Permanent(job.RetryIn(time.Second, boom)), "upstream 503"},
		{"retry in without cause", job.RetryIn(time.Second, nil), "conveyor: retry in 1s"},
		{"wrapped by the handler", fmt.Errorf("call: %w", job.RetryIn(time.Second, boom)), "call: retry in 1s: upstream 503"},
		{"plain", boom, "upstream 503"},
	}
	for _, tt := range tests {
		if got := job.FailureOf(j, tt.err, job.ReasonError, time.Time{}).Error; got != tt.want {
			t.Errorf("%s: Error = %q, want %q", tt.name, got, tt.want)
		}
	}
}
