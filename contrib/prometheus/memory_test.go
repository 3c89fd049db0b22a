package prometheus_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/memory"
	conveyorprom "github.com/conveyor-jobs/conveyor/contrib/prometheus"
	"github.com/conveyor-jobs/conveyor/job"
)

func TestQueueCollectorMemoryBroker(t *testing.T) {
	ctx := context.Background()
	b := memory.New(&memory.Options{FetchWait: -1})
	t.Cleanup(func() { _ = b.Close() })

	rec, reg := newRecorder(t, nil)
	p := broker.NewProducer(b, conveyorprom.CountPublished(rec))
	for range 4 {
		if _, err := p.Publish(ctx, broker.Message{Topic: "orchestrate", Payload: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.Publish(ctx, broker.Message{Topic: "orchestrate", Delay: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Publish(ctx, broker.Message{Topic: "emails"}); err != nil {
		t.Fatal(err)
	}
	ds, err := b.Fetch(ctx, []string{"orchestrate"}, 2)
	if err != nil || len(ds) != 2 {
		t.Fatalf("Fetch = %d deliveries, %v; want 2", len(ds), err)
	}
	if err := b.DeadLetter(ctx, ds[0], job.FailureOf(&ds[0].Job, job.Permanent(nil), job.ReasonPermanent, time.Now())); err != nil {
		t.Fatal(err)
	}

	c := conveyorprom.NewQueueCollector(b, &conveyorprom.QueueCollectorOptions{
		Now: func() time.Time { return refreshedAt },
	})
	reg.MustRegister(c)
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	// orchestrate: 2 ready + 1 leased = length 3, lag 2, pending 1, one
	// delayed, one dead letter, one consumer (the one that fetched).
	const want = queueHelp + `
conveyor_queue_consumers{topic="emails"} 0
conveyor_queue_consumers{topic="orchestrate"} 1
conveyor_queue_dead_letters{topic="emails"} 0
conveyor_queue_dead_letters{topic="orchestrate"} 1
conveyor_queue_delayed{topic="emails"} 0
conveyor_queue_delayed{topic="orchestrate"} 1
conveyor_queue_lag{topic="emails"} 1
conveyor_queue_lag{topic="orchestrate"} 2
conveyor_queue_last_refresh_timestamp_seconds 1.7000000005e+09
conveyor_queue_length{topic="emails"} 1
conveyor_queue_length{topic="orchestrate"} 3
conveyor_queue_pending{topic="emails"} 0
conveyor_queue_pending{topic="orchestrate"} 1
conveyor_queue_refresh_errors_total 0
# HELP conveyor_jobs_enqueued_total Jobs published, by topic.
# TYPE conveyor_jobs_enqueued_total counter
conveyor_jobs_enqueued_total{topic="emails"} 1
conveyor_jobs_enqueued_total{topic="orchestrate"} 5
`
	gatherAndCompare(t, reg, want,
		"conveyor_queue_consumers", "conveyor_queue_dead_letters", "conveyor_queue_delayed",
		"conveyor_queue_lag", "conveyor_queue_last_refresh_timestamp_seconds", "conveyor_queue_length",
		"conveyor_queue_pending", "conveyor_queue_refresh_errors_total", "conveyor_jobs_enqueued_total")

	// Jobs move; the gauges follow at the next refresh, not before.
	if err := b.Ack(ctx, ds[1]); err != nil {
		t.Fatal(err)
	}
	if n := gaugeValue(t, reg, "conveyor_queue_pending", "orchestrate"); n != 1 {
		t.Errorf("pending before refresh = %v, want the cached 1", n)
	}
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if n := gaugeValue(t, reg, "conveyor_queue_pending", "orchestrate"); n != 0 {
		t.Errorf("pending after refresh = %v, want 0", n)
	}
}

// gaugeValue returns the value of gauge name for topic in reg.
func gaugeValue(t testing.TB, reg prometheus.Gatherer, name, topic string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "topic" && l.GetValue() == topic {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{topic=%q}", name, topic)
	return 0
}
