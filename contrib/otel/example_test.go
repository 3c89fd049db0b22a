package otel_test

import (
	"context"
	"fmt"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/memory"
	conveyorotel "github.com/conveyor-jobs/conveyor/contrib/otel"
	"github.com/conveyor-jobs/conveyor/job"
)

func Example() {
	ctx := context.Background()
	// In an application: a provider exporting to your collector (OTLP).
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer tp.Shutdown(ctx)
	opts := &conveyorotel.Options{TracerProvider: tp}

	b := memory.New(&memory.Options{FetchWait: -1})
	defer b.Close()

	// Producer side: each published job carries its span's trace context.
	producer := broker.NewProducer(b, conveyorotel.InjectPublish(opts))
	if _, err := producer.Publish(ctx, broker.Message{Topic: "orchestrate", Payload: []byte(`{"prompt":"plan a trip"}`)}); err != nil {
		panic(err)
	}

	// Worker side: the handler runs in a span continuing that trace.
	mux := job.NewMux()
	mux.Use(conveyorotel.Tracing(opts))
	mux.HandleFunc("orchestrate", func(ctx context.Context, j *job.Job) error { return nil })

	ds, err := b.Fetch(ctx, []string{"orchestrate"}, 1)
	if err != nil {
		panic(err)
	}
	if err := mux.ProcessJob(ctx, &ds[0].Job); err != nil {
		panic(err)
	}

	ended := spans.Ended()
	pub, proc := ended[0], ended[1]
	fmt.Println(pub.Name(), "->", proc.Name())
	fmt.Println("same trace:", proc.SpanContext().TraceID() == pub.SpanContext().TraceID())
	fmt.Println("parent is the producer span:", proc.Parent().SpanID() == pub.SpanContext().SpanID())
	// Output:
	// publish orchestrate -> process orchestrate
	// same trace: true
	// parent is the producer span: true
}
