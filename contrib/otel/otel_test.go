package otel_test

import (
	"context"
	"errors"
	"maps"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/memory"
	conveyorotel "github.com/conveyor-jobs/conveyor/contrib/otel"
	"github.com/conveyor-jobs/conveyor/job"
)

// setup returns a span recorder, the options that record into it, and a
// memory broker whose Fetch does not wait.
func setup(t testing.TB) (*tracetest.SpanRecorder, *conveyorotel.Options, *memory.Broker) {
	t.Helper()
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	b := memory.New(&memory.Options{FetchWait: -1})
	t.Cleanup(func() { _ = b.Close() })
	return sr, &conveyorotel.Options{TracerProvider: tp}, b
}

// fetchOne fetches the oldest ready job of topic.
func fetchOne(t testing.TB, b broker.Broker, topic string) *broker.Delivery {
	t.Helper()
	ds, err := b.Fetch(context.Background(), []string{topic}, 1)
	if err != nil || len(ds) != 1 {
		t.Fatalf("Fetch(%s) = %d deliveries, %v; want 1", topic, len(ds), err)
	}
	return ds[0]
}

// spansOfKind returns the ended spans of kind k.
func spansOfKind(sr *tracetest.SpanRecorder, k trace.SpanKind) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range sr.Ended() {
		if s.SpanKind() == k {
			out = append(out, s)
		}
	}
	return out
}

// attrs returns the attributes of s as a map.
func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

// wantAttrs checks that s has every attribute of want.
func wantAttrs(t testing.TB, s sdktrace.ReadOnlySpan, want map[attribute.Key]any) {
	t.Helper()
	got := attrs(s)
	for k, v := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("span %q: no attribute %s", s.Name(), k)
			continue
		}
		if g.AsInterface() != v {
			t.Errorf("span %q: %s = %v (%T), want %v (%T)", s.Name(), k, g.AsInterface(), g.AsInterface(), v, v)
		}
	}
}

var errBoom = errors.New("boom")

func TestTraceContinuesFromProducerToWorker(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		outcome    string
		wantStatus codes.Code
	}{
		{"ack", nil, "ack", codes.Unset},
		{"plain error", errBoom, "fail", codes.Error},
		{"retry", job.RetryIn(time.Second, errBoom), "retry", codes.Error},
		{"snooze", job.Snooze(time.Second), "snooze", codes.Unset},
		{"permanent", job.Permanent(errBoom), "dead-letter", codes.Error},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sr, opts, b := setup(t)
			ctx, root := opts.TracerProvider.Tracer("test").Start(context.Background(), "request")
			p := broker.NewProducer(b, conveyorotel.InjectPublish(opts))
			id, err := p.Publish(ctx, broker.Message{Topic: "orchestrate", Payload: []byte(`{"prompt":"hi"}`)})
			if err != nil {
				t.Fatal(err)
			}
			root.End()

			d := fetchOne(t, b, "orchestrate")
			var inHandler trace.SpanContext
			h := conveyorotel.Tracing(opts)(job.HandlerFunc(func(ctx context.Context, j *job.Job) error {
				inHandler = trace.SpanContextFromContext(ctx)
				return tt.err
			}))
			if err := h.ProcessJob(context.Background(), &d.Job); err != tt.err {
				t.Fatalf("ProcessJob = %v, want the handler's %v", err, tt.err)
			}

			producers, consumers := spansOfKind(sr, trace.SpanKindProducer), spansOfKind(sr, trace.SpanKindConsumer)
			if len(producers) != 1 || len(consumers) != 1 {
				t.Fatalf("spans: %d producer, %d consumer; want 1 and 1", len(producers), len(consumers))
			}
			pub, proc := producers[0], consumers[0]

			// The producer span is a child of the publisher's span...
			if pub.Parent().SpanID() != root.SpanContext().SpanID() {
				t.Errorf("producer span's parent = %v, want the publisher's span %v", pub.Parent().SpanID(), root.SpanContext().SpanID())
			}
			// ...and the consumer span a child of the producer span, in the same trace.
			if proc.SpanContext().TraceID() != root.SpanContext().TraceID() {
				t.Errorf("consumer trace = %v, want %v", proc.SpanContext().TraceID(), root.SpanContext().TraceID())
			}
			if proc.Parent().SpanID() != pub.SpanContext().SpanID() || !proc.Parent().IsRemote() {
				t.Errorf("consumer span's parent = %v (remote %v), want the producer span %v",
					proc.Parent().SpanID(), proc.Parent().IsRemote(), pub.SpanContext().SpanID())
			}
			// The handler runs inside the consumer span.
			if inHandler.SpanID() != proc.SpanContext().SpanID() {
				t.Errorf("span in the handler's ctx = %v, want the consumer span %v", inHandler.SpanID(), proc.SpanContext().SpanID())
			}

			if pub.Name() != "publish orchestrate" || proc.Name() != "process orchestrate" {
				t.Errorf("span names = %q, %q", pub.Name(), proc.Name())
			}
			wantAttrs(t, pub, map[attribute.Key]any{
				"messaging.system":            "conveyor",
				"messaging.operation.type":    "send",
				"messaging.destination.name":  "orchestrate",
				"messaging.message.id":        id,
				"messaging.message.body.size": int64(15),
			})
			wantAttrs(t, proc, map[attribute.Key]any{
				"messaging.system":            "conveyor",
				"messaging.operation.type":    "process",
				"messaging.destination.name":  "orchestrate",
				"messaging.message.id":        id,
				"messaging.message.body.size": int64(15),
				conveyorotel.AttemptKey:       int64(1),
				conveyorotel.OutcomeKey:       tt.outcome,
			})
			if got := proc.Status().Code; got != tt.wantStatus {
				t.Errorf("consumer status = %v, want %v", got, tt.wantStatus)
			}
			if tt.wantStatus == codes.Error {
				if ev := proc.Events(); len(ev) != 1 || ev[0].Name != "exception" {
					t.Errorf("consumer events = %v, want the recorded error", ev)
				}
			}
		})
	}
}

func TestTracingRetriedJobKeepsTheTrace(t *testing.T) {
	sr, opts, b := setup(t)
	p := broker.NewProducer(b, conveyorotel.InjectPublish(opts))
	if _, err := p.Publish(context.Background(), broker.Message{Topic: "emails"}); err != nil {
		t.Fatal(err)
	}
	h := conveyorotel.Tracing(opts)(job.HandlerFunc(func(ctx context.Context, j *job.Job) error {
		if j.Attempt == 1 {
			return errBoom
		}
		return nil
	}))
	d := fetchOne(t, b, "emails")
	err := h.ProcessJob(context.Background(), &d.Job)
	if err := b.Retry(context.Background(), d, 0, job.FailureOf(&d.Job, err, job.ReasonError, time.Now())); err != nil {
		t.Fatal(err)
	}
	d = fetchOne(t, b, "emails")
	if err := h.ProcessJob(context.Background(), &d.Job); err != nil {
		t.Fatal(err)
	}
	pub := spansOfKind(sr, trace.SpanKindProducer)[0]
	consumers := spansOfKind(sr, trace.SpanKindConsumer)
	if len(consumers) != 2 {
		t.Fatalf("consumer spans = %d, want 2", len(consumers))
	}
	for i, s := range consumers {
		if s.Parent().SpanID() != pub.SpanContext().SpanID() {
			t.Errorf("attempt %d: parent = %v, want the producer span", i+1, s.Parent().SpanID())
		}
		wantAttrs(t, s, map[attribute.Key]any{conveyorotel.AttemptKey: int64(i + 1)})
	}
	wantAttrs(t, consumers[0], map[attribute.Key]any{conveyorotel.OutcomeKey: "fail"})
	wantAttrs(t, consumers[1], map[attribute.Key]any{conveyorotel.OutcomeKey: "ack"})
}

func TestInjectPublishBatch(t *testing.T) {
	sr, opts, b := setup(t)
	callers := map[string]string{"tenant": "acme"}
	ms := []broker.Message{
		{Topic: "emails", Headers: callers},
		{Topic: "emails", Headers: callers, ID: "fixed"},
		{Topic: "orchestrate"},
	}
	p := broker.NewProducer(b, conveyorotel.InjectPublish(opts))
	ids, err := p.PublishBatch(context.Background(), ms)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(callers, map[string]string{"tenant": "acme"}) || ms[0].Headers["traceparent"] != "" {
		t.Errorf("caller's headers changed: %v", callers)
	}
	producers := spansOfKind(sr, trace.SpanKindProducer)
	if len(producers) != 3 {
		t.Fatalf("producer spans = %d, want one per message", len(producers))
	}
	byID := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range producers {
		byID[attrs(s)["messaging.message.id"].AsString()] = s
		if s.Parent().IsValid() {
			t.Errorf("span %q has parent %v; want a root span (no span in ctx)", s.Name(), s.Parent().SpanID())
		}
	}
	prop := propagation.TraceContext{}
	for i, topic := range []string{"emails", "emails", "orchestrate"} {
		d := fetchOne(t, b, topic)
		if d.Job.ID != ids[i] {
			t.Fatalf("fetched %s, want %s", d.Job.ID, ids[i])
		}
		if i < 2 && d.Job.Header("tenant") != "acme" {
			t.Errorf("job %s lost its tenant header: %v", d.Job.ID, d.Job.Headers)
		}
		// Each job carries the context of its own producer span.
		sc := trace.SpanContextFromContext(prop.Extract(context.Background(), propagation.MapCarrier(d.Job.Headers)))
		s, ok := byID[ids[i]]
		if !ok {
			t.Fatalf("no producer span with message id %s (have %v)", ids[i], byID)
		}
		if sc.SpanID() != s.SpanContext().SpanID() || sc.TraceID() != s.SpanContext().TraceID() {
			t.Errorf("job %s: traceparent names span %v, want %v", ids[i], sc.SpanID(), s.SpanContext().SpanID())
		}
		if !sc.IsSampled() {
			t.Errorf("job %s: trace context not sampled", ids[i])
		}
		if err := b.Ack(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	}
	if ids[1] != "fixed" {
		t.Errorf("ids[1] = %q, want the producer's ID", ids[1])
	}
}

func TestInjectPublishFailure(t *testing.T) {
	sr, opts, b := setup(t)
	_ = b.Close()
	p := broker.NewProducer(b, conveyorotel.InjectPublish(opts))
	if _, err := p.Publish(context.Background(), broker.Message{Topic: "emails"}); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("Publish = %v, want ErrClosed", err)
	}
	producers := spansOfKind(sr, trace.SpanKindProducer)
	if len(producers) != 1 {
		t.Fatalf("producer spans = %d, want 1", len(producers))
	}
	if s := producers[0]; s.Status().Code != codes.Error || len(s.Events()) != 1 {
		t.Errorf("span status = %v, events %d; want Error with the error recorded", s.Status(), len(s.Events()))
	}
}

func TestTracingWithoutTraceContext(t *testing.T) {
	sr, opts, _ := setup(t)
	h := conveyorotel.Tracing(opts)(job.HandlerFunc(func(context.Context, *job.Job) error { return nil }))

	// No trace context in the headers and none in ctx: a root span.
	if err := h.ProcessJob(context.Background(), &job.Job{ID: "1", Topic: "emails", Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	// No trace context in the headers: the span in ctx is the parent.
	ctx, parent := opts.TracerProvider.Tracer("test").Start(context.Background(), "fetch")
	if err := h.ProcessJob(ctx, &job.Job{ID: "2", Topic: "emails", Attempt: 1, Headers: map[string]string{"tenant": "a"}}); err != nil {
		t.Fatal(err)
	}
	parent.End()
	consumers := spansOfKind(sr, trace.SpanKindConsumer)
	if len(consumers) != 2 {
		t.Fatalf("consumer spans = %d, want 2", len(consumers))
	}
	if consumers[0].Parent().IsValid() {
		t.Errorf("job without context: parent %v, want none", consumers[0].Parent().SpanID())
	}
	if consumers[1].Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Errorf("job without context: parent %v, want the span in ctx", consumers[1].Parent().SpanID())
	}
}

func TestTracingPanic(t *testing.T) {
	sr, opts, _ := setup(t)
	h := conveyorotel.Tracing(opts)(job.HandlerFunc(func(context.Context, *job.Job) error { panic("kaput") }))
	func() {
		defer func() {
			if r := recover(); r != "kaput" {
				t.Errorf("recovered %v, want the handler's panic re-raised", r)
			}
		}()
		_ = h.ProcessJob(context.Background(), &job.Job{ID: "1", Topic: "emails", Attempt: 2})
	}()
	consumers := spansOfKind(sr, trace.SpanKindConsumer)
	if len(consumers) != 1 {
		t.Fatalf("ended consumer spans = %d, want 1", len(consumers))
	}
	s := consumers[0]
	wantAttrs(t, s, map[attribute.Key]any{conveyorotel.OutcomeKey: "panic", conveyorotel.AttemptKey: int64(2)})
	if s.Status().Code != codes.Error || s.Status().Description != "panic: kaput" {
		t.Errorf("status = %v, want Error \"panic: kaput\"", s.Status())
	}
}

func TestCustomPropagator(t *testing.T) {
	sr, opts, b := setup(t)
	opts.Propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	p := broker.NewProducer(b, conveyorotel.InjectPublish(opts))
	if _, err := p.Publish(context.Background(), broker.Message{Topic: "emails"}); err != nil {
		t.Fatal(err)
	}
	d := fetchOne(t, b, "emails")
	if d.Job.Header("traceparent") == "" {
		t.Fatalf("no traceparent header: %v", d.Job.Headers)
	}
	if err := conveyorotel.Tracing(opts)(job.HandlerFunc(func(context.Context, *job.Job) error { return nil })).ProcessJob(context.Background(), &d.Job); err != nil {
		t.Fatal(err)
	}
	pub, proc := spansOfKind(sr, trace.SpanKindProducer)[0], spansOfKind(sr, trace.SpanKindConsumer)[0]
	if proc.Parent().SpanID() != pub.SpanContext().SpanID() {
		t.Errorf("parent = %v, want the producer span", proc.Parent().SpanID())
	}
}
