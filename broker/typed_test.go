package broker_test

import (
	"context"
	"encoding/xml"
	"errors"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/memory"
	"github.com/conveyor-jobs/conveyor/internal/clocktest"
	"github.com/conveyor-jobs/conveyor/job"
)

// task is the payload type of these tests.
type task struct {
	Prompt string  `json:"prompt" xml:"prompt"`
	Steps  int     `json:"steps" xml:"steps"`
	Score  float64 `json:"score" xml:"score"`
}

// xmlCodec is a codec other than the default, to show that publisher and
// handler agree on whichever codec they are given.
type xmlCodec struct{}

func (xmlCodec) Marshal(v any) ([]byte, error)      { return xml.Marshal(v) }
func (xmlCodec) Unmarshal(data []byte, v any) error { return xml.Unmarshal(data, v) }

// newMemory returns a memory broker whose Fetch does not wait and whose
// time is clk (nil for the real time), closed when the test ends.
func newMemory(t testing.TB, clk *clocktest.Clock) *memory.Broker {
	t.Helper()
	opts := &memory.Options{FetchWait: -1}
	if clk != nil {
		opts.Now = clk.Now
	}
	b := memory.New(opts)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// fetchAll fetches and acks every ready job of topic.
func fetchAll(t testing.TB, b broker.Broker, topic string) []job.Job {
	t.Helper()
	ds, err := b.Fetch(context.Background(), []string{topic}, 100)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if err := b.Ack(context.Background(), ds...); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	js := make([]job.Job, len(ds))
	for i, d := range ds {
		js[i] = d.Job
	}
	return js
}

// published returns how many jobs topic holds, ready or delayed; a topic
// the broker has never seen holds none.
func published(t testing.TB, b *memory.Broker, topic string) int64 {
	t.Helper()
	info, err := b.Inspect(context.Background(), topic)
	if errors.Is(err, broker.ErrNotFound) {
		return 0
	}
	if err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	return info.Length + info.Delayed
}

func TestTypedPublisherRoundTrip(t *testing.T) {
	want := task{Prompt: "summarise the report", Steps: 3, Score: 0.5}
	tests := []struct {
		name    string
		codec   job.Codec                                                     // given to NewTypedPublisher
		handler func(func(context.Context, task, *job.Job) error) job.Handler // decodes on the worker
	}{
		{"default codec, job.Typed", nil, job.Typed[task]},
		{"JSON given, job.Typed", job.JSON{}, job.Typed[task]},
		{"XML, job.TypedWith", xmlCodec{}, func(fn func(context.Context, task, *job.Job) error) job.Handler {
			return job.TypedWith(xmlCodec{}, fn)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newMemory(t, nil)
			tp := broker.NewTypedPublisher[task](b, "orchestrate", tt.codec)
			if _, err := tp.Publish(t.Context(), want, nil); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			ids, err := tp.PublishBatch(t.Context(), []task{want, want}, nil)
			if err != nil || len(ids) != 2 {
				t.Fatalf("PublishBatch = %v, %v", ids, err)
			}
			var got []task
			h := tt.handler(func(_ context.Context, v task, _ *job.Job) error {
				got = append(got, v)
				return nil
			})
			js := fetchAll(t, b, "orchestrate")
			for i := range js {
				if err := h.ProcessJob(t.Context(), &js[i]); err != nil {
					t.Fatalf("handler: %v (payload %s)", err, js[i].Payload)
				}
			}
			if len(got) != 3 || got[0] != want || got[1] != want || got[2] != want {
				t.Fatalf("handler decoded %+v, want 3 × %+v", got, want)
			}
		})
	}
}

func TestTypedPublisherOptions(t *testing.T) {
	start := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		opts    *broker.PublishOptions
		id      string            // the job's ID; "" for any generated one
		headers map[string]string // the job's headers
		due     time.Duration     // after start
		limits  [2]int64          // the job's MaxAttempts and Timeout
	}{
		{name: "nil options", opts: nil},
		{name: "zero options", opts: &broker.PublishOptions{}},
		{name: "ID", opts: &broker.PublishOptions{ID: "report-7"}, id: "report-7"},
		{name: "headers", opts: &broker.PublishOptions{Headers: map[string]string{"tenant": "acme"}}, headers: map[string]string{"tenant": "acme"}},
		{name: "delay", opts: &broker.PublishOptions{Delay: time.Minute}, due: time.Minute},
		{name: "process at", opts: &broker.PublishOptions{ProcessAt: start.Add(time.Hour)}, due: time.Hour},
		{name: "limits", opts: &broker.PublishOptions{MaxAttempts: 10, Timeout: 2 * time.Minute}, limits: [2]int64{10, int64(2 * time.Minute)}},
		{name: "process at wins over delay", opts: &broker.PublishOptions{ProcessAt: start.Add(time.Hour), Delay: time.Minute}, due: time.Hour},
		{
			name:    "all",
			opts:    &broker.PublishOptions{ID: "all-1", Headers: map[string]string{"tenant": "acme", "operation": "plan"}, Delay: 2 * time.Minute},
			id:      "all-1",
			headers: map[string]string{"tenant": "acme", "operation": "plan"},
			due:     2 * time.Minute,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clocktest.New(start)
			b := newMemory(t, clk)
			tp := broker.NewTypedPublisher[task](b, "orchestrate", nil)
			id, err := tp.Publish(t.Context(), task{Prompt: "p"}, tt.opts)
			if err != nil {
				t.Fatalf("Publish: %v", err)
			}
			if tt.id != "" && id != tt.id {
				t.Fatalf("Publish returned ID %q, want %q", id, tt.id)
			}
			if tt.due > 0 {
				clk.Advance(tt.due - time.Second)
				if js := fetchAll(t, b, "orchestrate"); len(js) != 0 {
					t.Fatalf("job delivered %v before it was due", tt.due-time.Second)
				}
				clk.Advance(time.Second)
			}
			js := fetchAll(t, b, "orchestrate")
			if len(js) != 1 {
				t.Fatalf("fetched %d jobs when due, want 1", len(js))
			}
			if js[0].ID != id {
				t.Fatalf("job ID %q, Publish returned %q", js[0].ID, id)
			}
			if !maps.Equal(js[0].Headers, tt.headers) {
				t.Fatalf("headers = %v, want %v", js[0].Headers, tt.headers)
			}
			if got := [2]int64{int64(js[0].MaxAttempts), int64(js[0].Timeout)}; got != tt.limits {
				t.Fatalf("MaxAttempts, Timeout = %d, %v; want %d, %v", got[0], time.Duration(got[1]), tt.limits[0], time.Duration(tt.limits[1]))
			}
		})
	}
}

// scribble is producer middleware that writes a header into each message's
// map without copying it first, as middleware must not; it shows whose map
// the messages carry.
func scribble(next broker.PublishFunc) broker.PublishFunc {
	return func(ctx context.Context, ms []broker.Message) ([]string, error) {
		for i := range ms {
			if ms[i].Headers != nil {
				ms[i].Headers["scribbled"] = strings.Repeat("x", i+1)
			}
		}
		return next(ctx, ms)
	}
}

func TestTypedPublisherCopiesHeaders(t *testing.T) {
	b := newMemory(t, nil)
	tp := broker.NewTypedPublisher[task](broker.NewProducer(b, scribble), "orchestrate", nil)
	opts := &broker.PublishOptions{Headers: map[string]string{"tenant": "acme"}}

	if _, err := tp.Publish(t.Context(), task{}, opts); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if _, err := tp.PublishBatch(t.Context(), []task{{}, {}}, opts); err != nil {
		t.Fatalf("PublishBatch: %v", err)
	}
	if want := map[string]string{"tenant": "acme"}; !maps.Equal(opts.Headers, want) {
		t.Fatalf("caller's Headers = %v, want %v unchanged", opts.Headers, want)
	}
	// Each job has a map of its own: the batch's second message got "xx"
	// without changing the first's "x".
	var got []string
	for _, j := range fetchAll(t, b, "orchestrate") {
		got = append(got, j.Headers["tenant"]+"/"+j.Headers["scribbled"])
	}
	if want := []string{"acme/x", "acme/x", "acme/xx"}; !slices.Equal(got, want) {
		t.Fatalf("jobs' tenant/scribbled headers = %v, want %v", got, want)
	}
}

func TestTypedPublisherEncodeError(t *testing.T) {
	bad := task{Prompt: "p", Score: math.NaN()} // JSON has no NaN
	tests := []struct {
		name    string
		publish func(context.Context, *broker.TypedPublisher[task]) error
		prefix  string
	}{
		{"Publish", func(ctx context.Context, tp *broker.TypedPublisher[task]) error {
			_, err := tp.Publish(ctx, bad, nil)
			return err
		}, "conveyor: cannot encode broker_test.task for topic \"orchestrate\": "},
		{"PublishBatch", func(ctx context.Context, tp *broker.TypedPublisher[task]) error {
			_, err := tp.PublishBatch(ctx, []task{{Prompt: "ok"}, bad, {Prompt: "ok"}}, nil)
			return err
		}, "batch value 1: conveyor: cannot encode broker_test.task for topic \"orchestrate\": "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newMemory(t, nil)
			err := tt.publish(t.Context(), broker.NewTypedPublisher[task](b, "orchestrate", nil))
			var ee *broker.EncodeError
			if !errors.As(err, &ee) {
				t.Fatalf("err = %v, want an *EncodeError", err)
			}
			if ee.Topic != "orchestrate" || ee.Type != "broker_test.task" || ee.Err == nil {
				t.Fatalf("EncodeError = %+v", ee)
			}
			if !strings.HasPrefix(err.Error(), tt.prefix) {
				t.Fatalf("err = %q, want it to start with %q", err, tt.prefix)
			}
			if n := published(t, b, "orchestrate"); n != 0 {
				t.Fatalf("%d jobs published, want none", n)
			}
		})
	}
}

// failOdd is producer middleware that publishes the messages at even
// indexes and reports the others as refused, as a store that confirmed part
// of a batch does.
func failOdd(next broker.PublishFunc) broker.PublishFunc {
	return func(ctx context.Context, ms []broker.Message) ([]string, error) {
		var even []broker.Message
		be := &broker.BatchError{Err: errors.New("refused")}
		for i := range ms {
			if i%2 == 0 {
				even = append(even, ms[i])
			} else {
				be.Failed = append(be.Failed, i)
			}
		}
		got, err := next(ctx, even)
		if err != nil {
			return nil, err
		}
		ids := make([]string, len(ms))
		for i := range ms {
			if i%2 == 0 {
				ids[i] = got[i/2]
			}
		}
		return ids, be
	}
}

func TestTypedPublisherBatchErrorUnchanged(t *testing.T) {
	b := newMemory(t, nil)
	var be *broker.BatchError
	spy := func(next broker.PublishFunc) broker.PublishFunc {
		return func(ctx context.Context, ms []broker.Message) ([]string, error) {
			ids, err := next(ctx, ms)
			errors.As(err, &be)
			return ids, err
		}
	}
	tp := broker.NewTypedPublisher[task](broker.NewProducer(b, spy, failOdd), "orchestrate", nil)

	ids, err := tp.PublishBatch(t.Context(), []task{{Steps: 0}, {Steps: 1}, {Steps: 2}}, nil)
	if be == nil || err != error(be) {
		t.Fatalf("err = %#v, want the *BatchError the Publisher returned, unchanged (%#v)", err, be)
	}
	if !slices.Equal(be.Failed, []int{1}) {
		t.Fatalf("Failed = %v, want [1]", be.Failed)
	}
	if len(ids) != 3 || ids[0] == "" || ids[1] != "" || ids[2] == "" {
		t.Fatalf("ids = %q, want IDs at 0 and 2 and \"\" at 1", ids)
	}
	var steps []int
	for _, j := range fetchAll(t, b, "orchestrate") {
		var v task
		if err := (job.JSON{}).Unmarshal(j.Payload, &v); err != nil {
			t.Fatal(err)
		}
		steps = append(steps, v.Steps)
	}
	if !slices.Equal(steps, []int{0, 2}) {
		t.Fatalf("published steps %v, want [0 2]", steps)
	}
}

func TestTypedPublisherBatchRejectsSharedID(t *testing.T) {
	tests := []struct {
		name    string
		n       int
		wantErr bool
	}{
		{"batch of one", 1, false},
		{"batch of two", 2, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newMemory(t, nil)
			tp := broker.NewTypedPublisher[task](b, "orchestrate", nil)
			ids, err := tp.PublishBatch(t.Context(), make([]task, tt.n), &broker.PublishOptions{ID: "same"})
			if tt.wantErr {
				if !errors.Is(err, broker.ErrInvalidMessage) || !strings.Contains(err.Error(), `PublishOptions.ID "same"`) {
					t.Fatalf("err = %v, want ErrInvalidMessage naming the ID", err)
				}
				if n := published(t, b, "orchestrate"); n != 0 {
					t.Fatalf("%d jobs published, want none", n)
				}
				return
			}
			if err != nil || !slices.Equal(ids, []string{"same"}) {
				t.Fatalf("PublishBatch = %v, %v, want [same]", ids, err)
			}
		})
	}
}

func TestNewTypedPublisherPanics(t *testing.T) {
	tests := []struct {
		name  string
		p     broker.Publisher
		topic string
		want  string
	}{
		{"nil publisher", nil, "orchestrate", `conveyor: NewTypedPublisher[broker_test.task] for topic "orchestrate": nil Publisher`},
		{"empty topic", broker.NewProducer(nil), "", "conveyor: NewTypedPublisher[broker_test.task]: empty topic"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if got := recover(); got != tt.want {
					t.Fatalf("panic = %v, want %q", got, tt.want)
				}
			}()
			broker.NewTypedPublisher[task](tt.p, tt.topic, nil)
		})
	}
}

func TestTypedPublisherTopic(t *testing.T) {
	tp := broker.NewTypedPublisher[task](newMemory(t, nil), "orchestrate", nil)
	if got := tp.Topic(); got != "orchestrate" {
		t.Fatalf("Topic = %q", got)
	}
}
