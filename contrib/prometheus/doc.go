// Package prometheus exports conveyor's job metrics to Prometheus.
//
// # Job counters and durations
//
// [Recorder] implements [middleware.Recorder]: pass it to the metrics
// middleware and the server, and it counts jobs per topic and event
// (conveyor_jobs_acked_total, conveyor_jobs_retried_total, …) and observes
// handler durations per topic and outcome (conveyor_job_duration_seconds).
// [CountPublished] counts enqueues on the producer side:
//
//	reg := prometheus.NewRegistry()
//	rec, err := conveyorprom.NewRecorder(reg, nil)
//	...
//	producer := broker.NewProducer(b, conveyorprom.CountPublished(rec))
//
// # Queue gauges
//
// [QueueCollector] exports the length, pending, lag, delayed and dead-letter
// depth of every topic, and its consumers. It asks the broker on an interval
// (15 s by default) and serves scrapes from that cache, so a scrape never
// runs a broker command:
//
//	qc := conveyorprom.NewQueueCollector(b, nil) // b implements broker.Inspector
//	reg.MustRegister(qc)
//	qc.Start()
//	defer qc.Stop()
//
// Serve reg with promhttp.HandlerFor(reg, promhttp.HandlerOpts{}) on
// /metrics.
package prometheus
