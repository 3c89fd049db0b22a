// Package otel traces jobs with OpenTelemetry, from the code that publishes
// them to the handler that processes them.
//
// # Producer
//
// [InjectPublish] starts a "publish <topic>" span per message and writes its
// trace context into the message's headers (W3C traceparent and tracestate):
//
//	producer := broker.NewProducer(b, conveyorotel.InjectPublish(nil))
//	id, err := producer.Publish(ctx, broker.Message{Topic: "orchestrate", Payload: p})
//
// # Worker
//
// [Tracing] is job middleware: it reads the trace context back from the job's
// headers and runs the handler in a "process <topic>" span whose parent is the
// producer's span, so one trace shows the request that enqueued the job, every
// attempt to process it, and whatever the handler traces inside:
//
//	mux.Use(conveyorotel.Tracing(nil))
//
// Both use the global TracerProvider unless [Options] names one, and W3C
// Trace Context unless Options names another propagator.
package otel
