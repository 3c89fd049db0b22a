package broker

import (
	"context"
	"hash/fnv"
)

// MaxPartitions bounds the partition count of a topic.
const MaxPartitions = 1024

// Partitioner is implemented by brokers that can split a topic into
// partitions (the Redis broker spreads them over a Cluster's masters; the
// memory broker keeps the same ordering and fairness). A topic has one
// partition until SetPartitions says otherwise. Publishers route a job with
// a [Message.Key] to one partition by the key's hash, and spread jobs
// without one; Fetch reads every partition of its topics in turn.
type Partitioner interface {
	// SetPartitions sets topic's partition count to n (1 to
	// [MaxPartitions]). Publishers use the new count at once; jobs already
	// in a partition that the new count leaves out are still fetched,
	// settled and inspected until that partition is empty. It returns an
	// error wrapping [ErrInvalidMessage] for an n out of range.
	SetPartitions(ctx context.Context, topic string, n int) error
	// Partitions returns topic's partition count: 1 for a topic never
	// partitioned.
	Partitions(ctx context.Context, topic string) (int, error)
}

// PartitionFor returns the partition, 0 to n-1, of a job with ordering
// key key on a topic of n partitions: FNV-1a (32 bits) of the key, modulo
// n. Every broker and producer uses it, so that one key maps to one
// partition whoever publishes. It returns 0 when n < 2.
func PartitionFor(key string, n int) int {
	if n < 2 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(key))
	return int(h.Sum32() % uint32(n))
}

// PartitionInfo describes one partition of a topic.
type PartitionInfo struct {
	// Partition is the partition's index, 0 to count-1. Partitions at or
	// above the topic's count still holding jobs (after the count was
	// lowered) are listed too.
	Partition int `json:"partition"`
	// Length is the number of jobs in the partition's stream (pending
	// included).
	Length int64 `json:"length"`
	// Pending is the number of jobs delivered and not yet settled.
	Pending int64 `json:"pending"`
	// Lag is the number of jobs not yet delivered.
	Lag int64 `json:"lag"`
	// Delayed is the number of jobs waiting for their due time.
	Delayed int64 `json:"delayed"`
	// DeadLetters is the number of the partition's dead letters.
	DeadLetters int64 `json:"dead_letters"`
	// Draining is true for a partition left over from an earlier count:
	// workers read it until it is empty, producers no longer add to it.
	Draining bool `json:"draining,omitempty"`
	// Node names where the partition lives (for Redis Cluster, the master's
	// address); "" when the broker has one node.
	Node string `json:"node,omitempty"`
}

// PartitionInspector is implemented by brokers that describe a topic's
// partitions one by one. [Inspector.Inspect] describes the topic as a
// whole, all partitions added up.
type PartitionInspector interface {
	// InspectPartitions returns one PartitionInfo per partition of topic
	// that is in its count or still holds jobs, by index.
	InspectPartitions(ctx context.Context, topic string) ([]PartitionInfo, error)
}
