package job_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/conveyor-jobs/conveyor/job"
)

func ok(context.Context, *job.Job) error { return nil }

func TestMuxRoutesByTopic(t *testing.T) {
	mux := job.NewMux()
	var got []string
	for _, topic := range []string{"a", "b"} {
		mux.HandleFunc(topic, func(_ context.Context, j *job.Job) error {
			got = append(got, topic+":"+j.ID)
			return nil
		})
	}
	for _, j := range []*job.Job{{ID: "1", Topic: "b"}, {ID: "2", Topic: "a"}} {
		if err := mux.ProcessJob(context.Background(), j); err != nil {
			t.Fatalf("ProcessJob(%s): %v", j.Topic, err)
		}
	}
	if strings.Join(got, ",") != "b:1,a:2" {
		t.Fatalf("routed %v, want [b:1 a:2]", got)
	}
	if ts := mux.Topics(); strings.Join(ts, ",") != "a,b" {
		t.Fatalf("Topics() = %v, want [a b]", ts)
	}
}

func TestMuxUnknownTopicDeadLetters(t *testing.T) {
	mux := job.NewMux()
	err := mux.ProcessJob(context.Background(), &job.Job{Topic: "nobody"})
	if !errors.Is(err, job.ErrNoHandler) {
		t.Fatalf("err = %v, want ErrNoHandler", err)
	}
	if o, _ := job.Classify(err); o != job.OutcomeDeadLetter {
		t.Fatalf("outcome = %v, want dead-letter", o)
	}
	f := job.FailureOf(&job.Job{Topic: "nobody"}, err, job.ReasonError, testTime)
	if f.Reason != job.ReasonNoHandler || f.Origin != "nobody" || !strings.Contains(f.Error, `"nobody"`) {
		t.Fatalf("failure = %+v", f)
	}
}

func TestMuxRegistrationErrors(t *testing.T) {
	tests := []struct {
		name  string
		topic string
		h     job.Handler
		want  []string
	}{
		{"empty topic", "", job.HandlerFunc(ok), []string{"empty topic"}},
		{"nil handler", "t", nil, []string{"nil handler", `"t"`}},
		{"nil func", "t", job.HandlerFunc(nil), []string{"nil handler"}},
		{"typed nil pointer", "t", (*pointerHandler)(nil), []string{"nil handler"}},
		{"duplicate", "dup", job.HandlerFunc(ok), []string{`"dup" registered twice`, "mux_test.go", "pointerHandler"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mux := job.NewMux()
			mux.Handle("dup", &pointerHandler{})
			err := mux.Register(tt.topic, tt.h)
			if !errors.Is(err, job.ErrBadRegistration) {
				t.Fatalf("Register err = %v, want ErrBadRegistration", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

type pointerHandler struct{}

func (*pointerHandler) ProcessJob(context.Context, *job.Job) error { return nil }

func TestMuxHandlePanicsNamingBothRegistrations(t *testing.T) {
	mux := job.NewMux()
	mux.Handle("orchestrate", &pointerHandler{})
	msg := panicMessage(t, func() { mux.HandleFunc("orchestrate", ok) })
	for _, w := range []string{"conveyor:", "orchestrate", "*job_test.pointerHandler", "job_test.ok", "mux_test.go:"} {
		if !strings.Contains(msg, w) {
			t.Errorf("panic %q does not mention %q", msg, w)
		}
	}
	if strings.Count(msg, "mux_test.go:") != 2 {
		t.Errorf("panic %q should name both registration sites", msg)
	}
}

func TestMuxUseAfterHandlePanics(t *testing.T) {
	mux := job.NewMux()
	mux.HandleFunc("t", ok)
	msg := panicMessage(t, func() { mux.Use(func(h job.Handler) job.Handler { return h }) })
	if !strings.Contains(msg, "before Mux.Handle") {
		t.Fatalf("panic = %q", msg)
	}
}

func panicMessage(t *testing.T, f func()) (msg string) {
	t.Helper()
	defer func() {
		r := recover()
		if r == nil {
			t.Fatal("did not panic")
		}
		msg, _ = r.(string)
	}()
	f()
	return ""
}

// tag returns middleware that appends name to the trace on the way in.
func tag(trace *[]string, name string) job.Middleware {
	return func(next job.Handler) job.Handler {
		return job.HandlerFunc(func(ctx context.Context, j *job.Job) error {
			*trace = append(*trace, name)
			return next.ProcessJob(ctx, j)
		})
	}
}

func TestChainOrderFirstIsOutermost(t *testing.T) {
	var trace []string
	h := job.Chain(tag(&trace, "a"), nil, tag(&trace, "b"), tag(&trace, "c"))(job.HandlerFunc(func(context.Context, *job.Job) error {
		trace = append(trace, "h")
		return nil
	}))
	if err := h.ProcessJob(context.Background(), &job.Job{}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(trace, ""); got != "abch" {
		t.Fatalf("order %q, want abch", got)
	}
}

func TestMuxMiddlewareBuiltOnceAndPerTopic(t *testing.T) {
	var trace []string
	builds := 0
	counting := func(next job.Handler) job.Handler {
		builds++
		return next
	}
	mux := job.NewMux()
	mux.Use(counting, tag(&trace, "global"))
	mux.With(tag(&trace, "slow")).HandleFunc("slow", func(context.Context, *job.Job) error {
		trace = append(trace, "slow-h")
		return nil
	})
	mux.HandleFunc("fast", func(context.Context, *job.Job) error {
		trace = append(trace, "fast-h")
		return nil
	})
	for range 3 {
		_ = mux.ProcessJob(context.Background(), &job.Job{Topic: "slow"})
	}
	_ = mux.ProcessJob(context.Background(), &job.Job{Topic: "fast"})
	if builds != 2 {
		t.Errorf("chain built %d times, want once per registration (2)", builds)
	}
	want := "global slow slow-h global slow slow-h global slow slow-h global fast-h"
	if got := strings.Join(trace, " "); got != want {
		t.Errorf("trace\n got %s\nwant %s", got, want)
	}
}

func TestMuxConcurrentRegisterAndProcess(t *testing.T) {
	mux := job.NewMux()
	mux.HandleFunc("t0", ok)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := range 100 {
			_ = mux.Register("t"+string(rune('a'+i%26))+strings.Repeat("x", i), job.HandlerFunc(ok))
		}
	}()
	go func() {
		defer wg.Done()
		for range 1000 {
			if err := mux.ProcessJob(context.Background(), &job.Job{Topic: "t0"}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	wg.Wait()
	if n := len(mux.Topics()); n != 101 {
		t.Fatalf("%d topics, want 101", n)
	}
}
