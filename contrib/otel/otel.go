package otel

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	otelapi "go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/job"
)

// ScopeName is the instrumentation scope of the spans this package starts.
const ScopeName = "github.com/conveyor-jobs/conveyor/contrib/otel"

// Attribute keys of conveyor's own span attributes; the others follow the
// OpenTelemetry messaging semantic conventions.
const (
	// AttemptKey is the 1-based attempt of the processed job.
	AttemptKey = attribute.Key("conveyor.job.attempt")
	// OutcomeKey is what the handler's error asked for: "ack", "fail",
	// "retry", "snooze", "dead-letter" (see job.Classify), or "panic".
	OutcomeKey = attribute.Key("conveyor.outcome")
)

// systemAttr names conveyor as the messaging system.
var systemAttr = semconv.MessagingSystemKey.String("conveyor")

// Options configures [InjectPublish] and [Tracing]. A nil *Options means all
// defaults.
type Options struct {
	// TracerProvider starts the spans. Nil means the global provider
	// (otel.GetTracerProvider) at the time the middleware is built.
	TracerProvider trace.TracerProvider
	// Propagator writes trace context into job headers and reads it back.
	// Nil means W3C Trace Context (propagation.TraceContext: the traceparent
	// and tracestate headers), not the global propagator, so that producers
	// and workers agree without global setup. Use the same propagator on
	// both sides.
	Propagator propagation.TextMapPropagator
}

// config is Options resolved.
type config struct {
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
}

func newConfig(opts *Options) config {
	if opts == nil {
		opts = &Options{}
	}
	tp := opts.TracerProvider
	if tp == nil {
		tp = otelapi.GetTracerProvider()
	}
	prop := opts.Propagator
	if prop == nil {
		prop = propagation.TraceContext{}
	}
	return config{tracer: tp.Tracer(ScopeName), prop: prop}
}

// InjectPublish returns producer middleware that starts one span of kind
// Producer per published message, named "publish <topic>", as a child of the
// span in the publisher's ctx, and writes that span's context into the
// message's Headers (traceparent and tracestate by default). The worker's
// [Tracing] middleware reads it back, so a job's processing continues the
// trace that published it.
//
// A batch gets one span per message rather than one span for the batch: each
// job then has its own parent, and each span carries its message's ID. The
// Headers map is copied before it is written, never changed in place. A span
// ends when the broker call returns; it records the error if the broker did
// not accept its message (a duplicate of a unique job included).
func InjectPublish(opts *Options) broker.PublishMiddleware {
	c := newConfig(opts)
	return func(next broker.PublishFunc) broker.PublishFunc {
		return func(ctx context.Context, ms []broker.Message) ([]string, error) {
			spans := make([]trace.Span, len(ms))
			for i := range ms {
				m := &ms[i]
				attrs := []attribute.KeyValue{
					systemAttr,
					semconv.MessagingOperationTypeSend,
					semconv.MessagingOperationName("publish"),
					semconv.MessagingDestinationName(m.Topic),
					semconv.MessagingMessageBodySize(len(m.Payload)),
				}
				if m.ID != "" {
					attrs = append(attrs, semconv.MessagingMessageID(m.ID))
				}
				sctx, span := c.tracer.Start(ctx, "publish "+m.Topic,
					trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(attrs...))
				h := make(map[string]string, len(m.Headers)+2)
				maps.Copy(h, m.Headers)
				c.prop.Inject(sctx, propagation.MapCarrier(h))
				m.Headers = h
				spans[i] = span
			}
			ids, err := next(ctx, ms)
			var be *broker.BatchError
			errors.As(err, &be)
			for i, span := range spans {
				accepted := err == nil || (i < len(ids) && ids[i] != "" && (be == nil || !slices.Contains(be.Duplicates, i)))
				if i < len(ids) && ids[i] != "" && ms[i].ID == "" {
					span.SetAttributes(semconv.MessagingMessageID(ids[i]))
				}
				if !accepted {
					span.RecordError(err)
					span.SetStatus(codes.Error, err.Error())
				}
				span.End()
			}
			return ids, err
		}
	}
}

// Tracing returns job middleware that reads the trace context from the job's
// Headers and runs the handler in a span of kind Consumer named
// "process <topic>", a child of the span that published the job (or of the
// span in ctx when the job carries no trace context). The span has the
// messaging attributes (system "conveyor", destination, message ID, body
// size), the attempt (conveyor.job.attempt) and the outcome
// (conveyor.outcome, from job.Classify). Its status is Error when the handler
// failed (outcomes fail, retry and dead-letter), with the error recorded; an
// ack or a snooze leaves it unset. A panic is recorded (outcome "panic") and
// re-raised, so that recovery middleware outside Tracing still sees it.
func Tracing(opts *Options) job.Middleware {
	c := newConfig(opts)
	return func(next job.Handler) job.Handler {
		return job.HandlerFunc(func(ctx context.Context, j *job.Job) error {
			ctx = c.prop.Extract(ctx, propagation.MapCarrier(j.Headers))
			ctx, span := c.tracer.Start(ctx, "process "+j.Topic,
				trace.WithSpanKind(trace.SpanKindConsumer),
				trace.WithAttributes(
					systemAttr,
					semconv.MessagingOperationTypeProcess,
					semconv.MessagingOperationName("process"),
					semconv.MessagingDestinationName(j.Topic),
					semconv.MessagingMessageID(j.ID),
					semconv.MessagingMessageBodySize(len(j.Payload)),
					AttemptKey.Int(j.Attempt),
				))
			ok := false
			defer func() {
				if ok {
					return
				}
				r := recover()
				if r == nil { // runtime.Goexit: nothing to re-raise
					span.End()
					return
				}
				span.SetAttributes(OutcomeKey.String("panic"))
				span.SetStatus(codes.Error, fmt.Sprint("panic: ", r))
				span.End()
				panic(r)
			}()
			err := next.ProcessJob(ctx, j)
			ok = true
			outcome, _ := job.Classify(err)
			span.SetAttributes(OutcomeKey.String(outcome.String()))
			switch outcome {
			case job.OutcomeAck, job.OutcomeSnooze:
			default:
				span.RecordError(err)
				span.SetStatus(codes.Error, err.Error())
			}
			span.End()
			return err
		})
	}
}
