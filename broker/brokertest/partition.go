package brokertest

import (
	"fmt"

	"github.com/conveyor-jobs/conveyor/broker"
)

// suiteTopics are the topics the subtests use, given Options.Partitions
// before a subtest starts (with those of topicsAlso).
var suiteTopics = []string{
	"a", "a0", "a1", "a2", "acked", "acme", "again", "amount", "at", "b",
	"b0", "bad", "batch-a", "batch-b", "because", "boom", "brief", "c", "c1",
	"c2", "c3", "c4", "cancel-delayed", "cancel-missing", "cancel-never-used",
	"cancel-queued", "cancel-redelivered", "cancel-running", "catch-up",
	"changed", "charge", "closed", "closing", "conc-a", "conc-b", "crash",
	"crashes", "crashy", "d", "d1", "d2", "daily", "daily-report", "dead",
	"delay", "delayed", "delivered", "dl", "done", "drop", "dry", "dry-none",
	"e", "every-second", "f", "fifo", "first", "flaky", "flaky-handler",
	"gen", "given", "h", "hourly", "idle", "in-1h", "in-2h", "in-3h", "insp",
	"job-a", "job-later", "k", "k1", "k2", "keep", "kept", "kept2", "l",
	"late", "later", "lim", "limited", "limits", "long", "lost", "many-hot",
	"max", "never-used", "nope", "now", "ok", "order", "order-42", "orders",
	"other", "other-entry", "p", "p-free", "p-held", "p-held-0", "p-held-3",
	"p1", "p2", "p3", "pages", "pages-2", "past", "pay-1", "payments", "pd",
	"pill", "pk", "pl", "poison", "published", "purge", "pw", "q", "queued",
	"r", "r1", "race", "reader", "ready", "redelivered", "replay", "replayed",
	"report", "reports", "retried", "run-a", "run-b", "running", "s",
	"s-high", "s-low", "s-mid", "s1", "s2", "second", "seven", "short",
	"snoozed", "soon", "t-a", "t-b", "t-c", "t-other", "t1", "tenant",
	"traceparent", "trim-m", "trim-m-7", "trim-m-8", "trim-m-9", "trim-o",
	"trim-p", "trim-p-2", "trim-u", "u", "u2", "ub", "ucancel", "ui",
	"unknown", "upoison", "v", "w-high", "w-low", "w-mid", "w1", "wi-busy",
	"wi-empty", "work", "x",
}

// topicsAlso returns the topics subtests name with a counter.
func topicsAlso() []string {
	var out []string
	for i := range 200 {
		out = append(out, fmt.Sprintf("many-%03d", i))
	}
	for i := range 5 {
		out = append(out, fmt.Sprintf("pending-%d", i))
	}
	return out
}

// partitionAll gives every topic of the suite Options.Partitions
// partitions through b, which must be a broker.Partitioner.
func (e *env) partitionAll(b broker.Broker) {
	e.t.Helper()
	p, ok := b.(broker.Partitioner)
	if !ok {
		e.t.Fatalf("Options.Partitions is %d but %T does not implement broker.Partitioner", e.opts.Partitions, b)
	}
	for _, topic := range append(topicsAlso(), suiteTopics...) {
		if err := p.SetPartitions(e.ctx, topic, e.opts.Partitions); err != nil {
			e.t.Fatalf("SetPartitions(%q, %d): %v", topic, e.opts.Partitions, err)
		}
	}
}

// ordered returns m with Key set to its topic when the suite runs on
// partitioned topics and m has no Key: the subtests that check the order of
// a topic's jobs then keep it, since a partitioned topic orders the jobs of
// one key (one partition), not the whole topic. A unique message is left
// as it is: it is routed by its unique key, as its duplicates are.
func (e *env) ordered(m broker.Message) broker.Message {
	if e.opts.Partitions > 1 && m.Key == "" && m.UniqueKey == "" {
		m.Key = m.Topic
	}
	return m
}

// orderedAll is ordered of each message of ms, in a copy.
func (e *env) orderedAll(ms []broker.Message) []broker.Message {
	out := make([]broker.Message, len(ms))
	for i, m := range ms {
		out[i] = e.ordered(m)
	}
	return out
}
