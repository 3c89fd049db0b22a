package prometheus_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/memory"
	conveyorprom "github.com/conveyor-jobs/conveyor/contrib/prometheus"
	"github.com/conveyor-jobs/conveyor/middleware"
)

func Example() {
	b := memory.New(nil) // or a Redis broker: both implement broker.Inspector
	defer b.Close()

	reg := prometheus.NewRegistry()
	rec, err := conveyorprom.NewRecorder(reg, nil)
	if err != nil {
		panic(err)
	}
	// Count enqueues where jobs are published...
	producer := broker.NewProducer(b, conveyorprom.CountPublished(rec))
	for range 3 {
		if _, err := producer.Publish(context.Background(), broker.Message{Topic: "orchestrate"}); err != nil {
			panic(err)
		}
	}
	// ...and the rest where they are processed (the server and the metrics
	// middleware call the recorder).
	rec.Count("orchestrate", middleware.EventAcked, 1)
	rec.ObserveDuration("orchestrate", "ack", 120*time.Millisecond)

	// Queue gauges are refreshed in the background, never at scrape time.
	qc := conveyorprom.NewQueueCollector(b, &conveyorprom.QueueCollectorOptions{Interval: 15 * time.Second})
	reg.MustRegister(qc)
	qc.Start()
	defer qc.Stop()
	if err := qc.Refresh(context.Background()); err != nil { // here only, to print the gauges at once
		panic(err)
	}

	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))

	rr := httptest.NewRecorder()
	mux.ServeHTTP(rr, httptest.NewRequest("GET", "/metrics", nil))
	for line := range strings.Lines(rr.Body.String()) {
		if strings.Contains(line, `topic="orchestrate"`) &&
			(strings.HasPrefix(line, "conveyor_jobs_") || strings.HasPrefix(line, "conveyor_queue_length")) {
			fmt.Print(line)
		}
	}
	// Output:
	// conveyor_jobs_acked_total{topic="orchestrate"} 1
	// conveyor_jobs_breaker_rejected_total{topic="orchestrate"} 0
	// conveyor_jobs_dead_lettered_total{topic="orchestrate"} 0
	// conveyor_jobs_dequeued_total{topic="orchestrate"} 0
	// conveyor_jobs_enqueued_total{topic="orchestrate"} 3
	// conveyor_jobs_failed_total{topic="orchestrate"} 0
	// conveyor_jobs_rate_limited_total{topic="orchestrate"} 0
	// conveyor_jobs_retried_total{topic="orchestrate"} 0
	// conveyor_jobs_snoozed_total{topic="orchestrate"} 0
	// conveyor_queue_length{topic="orchestrate"} 3
}
