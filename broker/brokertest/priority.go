package brokertest

import (
	"fmt"
	"math"

	"github.com/conveyor-jobs/conveyor/broker"
)

// fetchWeighted calls FetchWeighted once and fails on error or on more than
// max jobs.
func (e *env) fetchWeighted(p broker.PriorityFetcher, topics []broker.TopicWeight, max int, strict bool) []*broker.Delivery {
	e.t.Helper()
	ds, err := p.FetchWeighted(e.ctx, topics, max, strict)
	if err != nil {
		e.t.Fatalf("FetchWeighted(%v, %d, %v): %v", topics, max, strict, err)
	}
	if len(ds) > max {
		e.t.Fatalf("FetchWeighted(%v, %d, %v) returned %d jobs", topics, max, strict, len(ds))
	}
	return ds
}

// testWeightedShares: with a backlog in every topic, the jobs a weighted
// fetch hands out follow the weights within 10 %, whether one job or
// several are fetched at a time, and jobs of each topic stay FIFO.
func testWeightedShares(e *env) {
	t := e.t
	b := e.open("c1")
	p := power[broker.PriorityFetcher](t, b, "PriorityFetcher")
	topics := []broker.TopicWeight{{Topic: "w-low", Weight: 1}, {Topic: "w-high", Weight: 3}, {Topic: "w-mid", Weight: 2}}
	for _, max := range []int{1, 4} {
		const total = 120
		var ms []broker.Message
		for _, tw := range topics {
			// Enough that no topic runs dry before total jobs are fetched.
			for i := range total {
				ms = append(ms, broker.Message{Topic: tw.Topic, Payload: fmt.Appendf(nil, "%d", i)})
			}
		}
		if _, err := b.PublishBatch(e.ctx, e.orderedAll(ms)); err != nil {
			t.Fatalf("PublishBatch: %v", err)
		}
		got := map[string]int{}
		var all []*broker.Delivery
		for len(all) < total {
			ds := e.fetchWeighted(p, topics, min(max, total-len(all)), false)
			for _, d := range ds {
				if want := fmt.Sprint(got[d.Job.Topic]); string(d.Job.Payload) != want {
					t.Fatalf("max %d: topic %s gave job %q, want %q (FIFO)", max, d.Job.Topic, d.Job.Payload, want)
				}
				got[d.Job.Topic]++
			}
			// Settled at once: a lease that ran out while the rest is
			// fetched (a slow machine) would redeliver the job first.
			e.ack(b, ds...)
			all = append(all, ds...)
		}
		for _, tw := range topics {
			want := float64(total) * float64(tw.Weight) / 6
			if math.Abs(float64(got[tw.Topic])-want) > 0.1*want {
				t.Errorf("max %d: topic %s (weight %d) got %d of %d jobs, want %.0f ±10%% (all: %v)",
					max, tw.Topic, tw.Weight, got[tw.Topic], total, want, got)
			}
		}
		// Drain what is left, so the next round starts with equal backlogs.
		left := 3*total - len(all)
		e.ack(b, e.fetchN(b, []string{"w-low", "w-high", "w-mid"}, left, 50)...)
	}
}

// testWeightedIdleTopic: a topic with nothing ready leaves its share to the
// others, and a weighted fetch returns jobs whenever any topic has some.
func testWeightedIdleTopic(e *env) {
	t := e.t
	b := e.open("c1")
	p := power[broker.PriorityFetcher](t, b, "PriorityFetcher")
	topics := []broker.TopicWeight{{Topic: "wi-empty", Weight: 10}, {Topic: "wi-busy", Weight: 1}}
	e.publishN(b, "wi-busy", 6)
	var got []*broker.Delivery
	for range 6 {
		ds := e.fetchWeighted(p, topics, 3, false)
		got = append(got, ds...)
		if len(got) == 6 {
			break
		}
	}
	if len(got) != 6 {
		t.Fatalf("got %d of the 6 jobs of the only topic with jobs in 6 fetches of 3", len(got))
	}
	e.ack(b, got...)
}

// testStrictOrder: a strict fetch hands out a job of a topic only when
// every topic ranked above it has none ready.
func testStrictOrder(e *env) {
	t := e.t
	b := e.open("c1")
	p := power[broker.PriorityFetcher](t, b, "PriorityFetcher")
	// Listed out of order: the weights rank them.
	topics := []broker.TopicWeight{{Topic: "s-low", Weight: 1}, {Topic: "s-high", Weight: 9}, {Topic: "s-mid", Weight: 5}}
	rank := map[string]int{"s-high": 0, "s-mid": 1, "s-low": 2}
	left := map[string]int{"s-high": 7, "s-mid": 7, "s-low": 7}
	for topic, n := range left {
		e.publishN(b, topic, n)
	}
	names := []string{"s-high", "s-mid", "s-low"}
	total := 0
	for total < 21 {
		ds := e.fetchWeighted(p, topics, 3, true)
		for _, d := range ds {
			left[d.Job.Topic]--
		}
		for _, d := range ds {
			for _, higher := range names[:rank[d.Job.Topic]] {
				if left[higher] > 0 {
					t.Fatalf("strict fetch gave a job of %s while %s had %d ready", d.Job.Topic, higher, left[higher])
				}
			}
		}
		total += len(ds)
		e.ack(b, ds...)
	}
	// A job published to a higher topic comes before the lower backlog.
	e.publishN(b, "s-low", 2)
	e.publishN(b, "s-high", 1)
	ds := e.fetchWeighted(p, topics, 1, true)
	if len(ds) != 1 || ds[0].Job.Topic != "s-high" {
		t.Fatalf("strict fetch of 1 with s-high and s-low ready gave %v, want the s-high job", describe(ds))
	}
	e.ack(b, ds...)
	e.ack(b, e.fetchN(b, names, 2, 10)...)
}
