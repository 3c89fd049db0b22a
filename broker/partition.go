package broker

import "context"

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
