package memory_test

import (
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/brokertest"
	"github.com/conveyor-jobs/conveyor/broker/memory"
)

func TestConformance(t *testing.T) {
	brokertest.Run(t, conformanceFactory)
}

// TestConformancePartitioned runs the suite with every topic in 4
// partitions.
func TestConformancePartitioned(t *testing.T) {
	brokertest.RunWith(t, conformanceFactory, brokertest.Options{Partitions: 4})
}

func conformanceFactory(t *testing.T, opts brokertest.Options) func(string) broker.Broker {
	root := memory.New(&memory.Options{
		Lease:         200 * time.Millisecond,
		MaxDeliveries: opts.MaxDeliveries,
		FetchWait:     50 * time.Millisecond,
	})
	t.Cleanup(func() { _ = root.Close() })
	return func(consumer string) broker.Broker { return root.Consumer(consumer) }
}
