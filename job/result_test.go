package job_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/conveyor-jobs/conveyor/job"
)

// recorder is a job.Reporter that keeps what it is given.
type recorder struct {
	mu       sync.Mutex
	result   []byte
	results  int
	progress []float64
	messages []string
}

func (r *recorder) SetResult(b []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.result = b
	r.results++
}

func (r *recorder) Progress(f float64, msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.progress = append(r.progress, f)
	r.messages = append(r.messages, msg)
}

func TestSetResult(t *testing.T) {
	r := &recorder{}
	ctx := job.WithReporter(context.Background(), r)
	if err := job.SetResult(ctx, map[string]int{"a": 1}); err != nil {
		t.Fatal(err)
	}
	if err := job.SetResult(ctx, []string{"second"}); err != nil {
		t.Fatal(err)
	}
	if string(r.result) != `["second"]` {
		t.Fatalf("result %q, want the second call's", r.result)
	}
	if err := job.SetResultBytes(ctx, []byte("raw bytes")); err != nil || string(r.result) != "raw bytes" {
		t.Fatalf("SetResultBytes: %v, result %q", err, r.result)
	}
	if err := job.SetResultBytes(ctx, nil); err != nil || r.result == nil || len(r.result) != 0 {
		t.Fatalf("SetResultBytes(nil): %v, result %#v; want an empty, non-nil result", err, r.result)
	}
	if job.ReporterFrom(ctx) != r || job.ReporterFrom(context.Background()) != nil {
		t.Fatal("ReporterFrom does not return the installed reporter")
	}
}

func TestSetResultErrors(t *testing.T) {
	r := &recorder{}
	ctx := job.WithReporter(context.Background(), r)
	tests := []struct {
		name string
		set  func() error
		is   error
		text string
	}{
		{"no reporter", func() error { return job.SetResult(context.Background(), 1) }, job.ErrNoReporter, "only in a handler run by a server"},
		{"no reporter, bytes", func() error { return job.SetResultBytes(context.Background(), []byte("x")) }, job.ErrNoReporter, "no result recorder"},
		{"too large", func() error { return job.SetResult(ctx, strings.Repeat("x", job.MaxResultSize)) }, job.ErrResultTooLarge, "bound of 1048576 bytes"},
		{"too large, bytes", func() error { return job.SetResultBytes(ctx, make([]byte, job.MaxResultSize+1)) }, job.ErrResultTooLarge, "1048577 bytes"},
		{"not encodable", func() error { return job.SetResult(ctx, math.Inf(1)) }, nil, "cannot encode result as JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.set()
			if err == nil || (tt.is != nil && !errors.Is(err, tt.is)) || !strings.Contains(err.Error(), tt.text) {
				t.Fatalf("error %v, want one matching %v and saying %q", err, tt.is, tt.text)
			}
		})
	}
	if r.results != 0 {
		t.Fatalf("%d results recorded by failed calls", r.results)
	}
	// Exactly the bound is accepted.
	if err := job.SetResultBytes(ctx, make([]byte, job.MaxResultSize)); err != nil {
		t.Fatalf("a result of exactly MaxResultSize: %v", err)
	}
}

func TestProgress(t *testing.T) {
	job.Progress(context.Background(), 0.5, "no reporter: a no-op") // must not panic
	r := &recorder{}
	ctx := job.WithReporter(context.Background(), r)
	for _, f := range []float64{-1, 0, 0.25, 1, 2, math.NaN(), math.Inf(1)} {
		job.Progress(ctx, f, "m")
	}
	want := []float64{0, 0, 0.25, 1, 1, 0, 1}
	for i, f := range r.progress {
		if f != want[i] {
			t.Fatalf("progress %v, want %v (clamped to [0, 1])", r.progress, want)
		}
	}
	if len(r.progress) != len(want) {
		t.Fatalf("%d reports, want %d", len(r.progress), len(want))
	}
}

type args struct {
	N int `json:"n"`
}

type answer struct {
	Double int `json:"double"`
}

func TestTypedResult(t *testing.T) {
	boom := errors.New("boom")
	h := job.TypedResult(func(ctx context.Context, a args, j *job.Job) (answer, error) {
		if a.N < 0 {
			return answer{Double: -1}, boom
		}
		return answer{Double: 2 * a.N}, nil
	})
	if n, ok := h.(interface{ HandlerName() string }); !ok || n.HandlerName() != "job.TypedResult[job_test.args, job_test.answer]" {
		t.Fatalf("handler name %v", h)
	}

	r := &recorder{}
	ctx := job.WithReporter(context.Background(), r)
	if err := h.ProcessJob(ctx, &job.Job{Topic: "t", Payload: []byte(`{"n":21}`)}); err != nil {
		t.Fatal(err)
	}
	if string(r.result) != `{"double":42}` {
		t.Fatalf("result %q", r.result)
	}

	r = &recorder{}
	ctx = job.WithReporter(context.Background(), r)
	if err := h.ProcessJob(ctx, &job.Job{Topic: "t", Payload: []byte(`{"n":-1}`)}); !errors.Is(err, boom) {
		t.Fatalf("error %v, want the handler's", err)
	}
	if r.results != 0 {
		t.Fatalf("a failed handler recorded result %q", r.result)
	}

	err := h.ProcessJob(ctx, &job.Job{Topic: "t", Payload: []byte(`not json`)})
	var de *job.DecodeError
	if o, _ := job.Classify(err); o != job.OutcomeDeadLetter || !errors.As(err, &de) {
		t.Fatalf("undecodable payload: %v, want a permanent *job.DecodeError", err)
	}

	// Without a reporter the result cannot be kept: the job fails rather
	// than losing it silently.
	if err := h.ProcessJob(context.Background(), &job.Job{Topic: "t", Payload: []byte(`{"n":1}`)}); !errors.Is(err, job.ErrNoReporter) {
		t.Fatalf("without a reporter: %v, want job.ErrNoReporter", err)
	}
	if job.TypedResult[args, answer](nil) != nil {
		t.Fatal("TypedResult(nil) is not nil")
	}
}
