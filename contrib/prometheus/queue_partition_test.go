package prometheus_test

import (
	"context"
	"errors"
	"testing"

	"github.com/conveyor-jobs/conveyor/broker"
	conveyorprom "github.com/conveyor-jobs/conveyor/contrib/prometheus"
)

// partitionedBroker adds a per-partition breakdown to a fakeBroker.
type partitionedBroker struct {
	*fakeBroker
	parts map[string][]broker.PartitionInfo
	err   error
	calls int
}

var _ broker.PartitionInspector = (*partitionedBroker)(nil)

func (b *partitionedBroker) InspectPartitions(_ context.Context, topic string) ([]broker.PartitionInfo, error) {
	b.calls++
	if b.err != nil {
		return nil, b.err
	}
	return b.parts[topic], nil
}

func newPartitionedBroker() *partitionedBroker {
	return &partitionedBroker{fakeBroker: twoTopics(), parts: map[string][]broker.PartitionInfo{
		"orchestrate": {
			{Partition: 0, Length: 7, Pending: 2, Lag: 5, Delayed: 4, DeadLetters: 2, Node: "10.0.0.1:7000"},
			{Partition: 1, Length: 5, Pending: 1, Lag: 4, Node: "10.0.0.2:7000"},
		},
	}}
}

const partitionHelp = `
# HELP conveyor_queue_partition_dead_letters Dead letters of the partition.
# TYPE conveyor_queue_partition_dead_letters gauge
# HELP conveyor_queue_partition_delayed Jobs of the partition waiting for their due time.
# TYPE conveyor_queue_partition_delayed gauge
# HELP conveyor_queue_partition_lag Jobs of the partition not yet delivered.
# TYPE conveyor_queue_partition_lag gauge
# HELP conveyor_queue_partition_length Jobs in the partition's stream: unread plus pending.
# TYPE conveyor_queue_partition_length gauge
# HELP conveyor_queue_partition_pending Jobs of the partition delivered and not yet settled.
# TYPE conveyor_queue_partition_pending gauge
`

var partitionNames = []string{
	"conveyor_queue_partition_dead_letters", "conveyor_queue_partition_delayed",
	"conveyor_queue_partition_lag", "conveyor_queue_partition_length",
	"conveyor_queue_partition_pending", "conveyor_queue_length",
}

func TestQueueCollectorPartitions(t *testing.T) {
	b := newPartitionedBroker()
	c, reg := newQueueCollector(t, b, &conveyorprom.QueueCollectorOptions{Partitions: true})
	if err := c.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	const want = partitionHelp + `
# HELP conveyor_queue_length Jobs in the topic's stream: unread plus pending.
# TYPE conveyor_queue_length gauge
conveyor_queue_length{topic="emails"} 1
conveyor_queue_length{topic="orchestrate"} 12
conveyor_queue_partition_dead_letters{node="10.0.0.1:7000",partition="0",topic="orchestrate"} 2
conveyor_queue_partition_dead_letters{node="10.0.0.2:7000",partition="1",topic="orchestrate"} 0
conveyor_queue_partition_delayed{node="10.0.0.1:7000",partition="0",topic="orchestrate"} 4
conveyor_queue_partition_delayed{node="10.0.0.2:7000",partition="1",topic="orchestrate"} 0
conveyor_queue_partition_lag{node="10.0.0.1:7000",partition="0",topic="orchestrate"} 5
conveyor_queue_partition_lag{node="10.0.0.2:7000",partition="1",topic="orchestrate"} 4
conveyor_queue_partition_length{node="10.0.0.1:7000",partition="0",topic="orchestrate"} 7
conveyor_queue_partition_length{node="10.0.0.2:7000",partition="1",topic="orchestrate"} 5
conveyor_queue_partition_pending{node="10.0.0.1:7000",partition="0",topic="orchestrate"} 2
conveyor_queue_partition_pending{node="10.0.0.2:7000",partition="1",topic="orchestrate"} 1
`
	gatherAndCompare(t, reg, want, partitionNames...)

	// A failed breakdown keeps the previous values and is counted.
	b.err = errors.New("connection refused")
	if err := c.Refresh(context.Background()); err == nil {
		t.Fatal("Refresh: no error from a failed InspectPartitions")
	}
	gatherAndCompare(t, reg, want, partitionNames...)
}

func TestQueueCollectorPartitionsOff(t *testing.T) {
	b := newPartitionedBroker()
	c, reg := newQueueCollector(t, b, nil)
	if err := c.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if b.calls != 0 {
		t.Errorf("InspectPartitions called %d times without Options.Partitions", b.calls)
	}
	gatherAndCompare(t, reg, `
# HELP conveyor_queue_length Jobs in the topic's stream: unread plus pending.
# TYPE conveyor_queue_length gauge
conveyor_queue_length{topic="emails"} 1
conveyor_queue_length{topic="orchestrate"} 12
`, partitionNames...)
}
