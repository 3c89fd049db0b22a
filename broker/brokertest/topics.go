package brokertest

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/conveyor-jobs/conveyor/broker"
)

// testTopicsBacklog: a Fetch over many topics returns jobs whenever any of
// them has jobs waiting, and serves the topics in turn, so that a topic
// with a long backlog progresses beside many small ones and no worker sits
// idle while jobs wait. Jobs of one topic still come in FIFO order.
func testTopicsBacklog(e *env) {
	t := e.t
	b := e.open("c1")
	const small, each, hotJobs, batch = 200, 3, 100, 10
	topics := make([]string, 0, small+1)
	var ms []broker.Message
	for i := range small {
		topic := fmt.Sprintf("many-%03d", i)
		topics = append(topics, topic)
		for j := range each {
			ms = append(ms, broker.Message{Topic: topic, Payload: fmt.Appendf(nil, "%s-%d", topic, j)})
		}
	}
	topics = append(topics, "many-hot") // listed last
	for j := range hotJobs {
		ms = append(ms, broker.Message{Topic: "many-hot", Payload: fmt.Appendf(nil, "many-hot-%d", j)})
	}
	if _, err := b.PublishBatch(e.ctx, e.orderedAll(ms)); err != nil {
		t.Fatalf("PublishBatch: %v", err)
	}
	left := len(ms)
	smallLeft := small * each
	next := map[string]int{} // topic -> index of the next payload expected
	empty, calls, hotBeforeSmallDone := 0, 0, 0
	for left > 0 && calls < 4*len(ms)/batch {
		calls++
		ds := e.fetch(b, topics, batch)
		if len(ds) == 0 {
			empty++
			continue
		}
		for _, d := range ds {
			p := string(d.Job.Payload)
			i := strings.LastIndexByte(p, '-')
			topic, seq := p[:max(i, 0)], p[i+1:]
			if topic != d.Job.Topic {
				t.Fatalf("job %q came from topic %q", d.Job.Payload, d.Job.Topic)
			}
			if n, _ := strconv.Atoi(seq); n != next[topic] {
				t.Fatalf("topic %s: got %q, want %s-%d next (FIFO)", topic, d.Job.Payload, topic, next[topic])
			}
			next[topic]++
			left--
			if topic == "many-hot" {
				if smallLeft > 0 {
					hotBeforeSmallDone++
				}
			} else {
				smallLeft--
			}
		}
		e.ack(b, ds...)
	}
	if left > 0 {
		t.Fatalf("after %d Fetch calls (%d of them empty), %d of %d jobs were never fetched", calls, empty, left, len(ms))
	}
	if empty > 0 {
		t.Errorf("%d of %d Fetch calls returned nothing while jobs were waiting", empty, calls)
	}
	// Served in turn, the hot topic gets one job per round of the 201
	// topics (about 20 Fetch calls of 10) while the small ones have jobs:
	// about as many as each small topic has.
	if hotBeforeSmallDone < each-1 {
		t.Errorf("the topic with a backlog of %d got %d jobs while %d small topics of %d were drained; want at least %d (served in turn)",
			hotJobs, hotBeforeSmallDone, small, each, each-1)
	}
}
