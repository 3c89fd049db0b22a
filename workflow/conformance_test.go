package workflow_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/brokertest"
	"github.com/conveyor-jobs/conveyor/broker/memory"
	"github.com/conveyor-jobs/conveyor/broker/redis"
	"github.com/conveyor-jobs/conveyor/internal/redistest"
	"github.com/conveyor-jobs/conveyor/workflow/workflowtest"
)

func memoryFactory(t *testing.T, opts brokertest.Options) func(string) broker.Broker {
	root := memory.New(&memory.Options{Lease: opts.Lease, MaxDeliveries: opts.MaxDeliveries, FetchWait: 20 * time.Millisecond})
	t.Cleanup(func() { _ = root.Close() })
	return func(consumer string) broker.Broker { return root.Consumer(consumer) }
}

func TestConformanceMemory(t *testing.T) {
	t.Parallel()
	workflowtest.Run(t, memoryFactory)
}

// suiteTopics are the topics the workflow suite uses.
var suiteTopics = []string{"a", "b", "c", "cb", "childcb", "l1", "l2", "l3", "k1", "k2", "k3", "k4", "k5"}

// TestConformanceMemoryPartitioned runs the suite on a memory broker whose
// topics have 4 partitions: members, callbacks and chain links are routed
// among them, and their ends are recorded from whichever partition holds
// them.
func TestConformanceMemoryPartitioned(t *testing.T) {
	t.Parallel()
	workflowtest.Run(t, func(t *testing.T, opts brokertest.Options) func(string) broker.Broker {
		consumers := memoryFactory(t, opts)
		root := consumers(memory.DefaultConsumer).(*memory.Broker)
		for _, topic := range suiteTopics {
			if err := root.SetPartitions(t.Context(), topic, 4); err != nil {
				t.Fatal(err)
			}
		}
		return consumers
	})
}

// redisFactory returns a Factory on the Redis client connects to: a fresh
// namespace per call.
func redisFactory(prefix string, client func(t *testing.T) goredis.UniversalClient) brokertest.Factory {
	var n atomic.Int64
	return func(t *testing.T, opts brokertest.Options) func(string) broker.Broker {
		rdb := client(t)
		ns := fmt.Sprintf("%s-wf%d", prefix, n.Add(1))
		return func(consumer string) broker.Broker {
			b, err := redis.New(rdb, &redis.Options{
				Namespace: ns, Consumer: consumer, Lease: opts.Lease, MaxDeliveries: opts.MaxDeliveries,
				Block: 50 * time.Millisecond, ClaimInterval: opts.Lease / 5,
			})
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
}

func TestConformanceRedis(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	workflowtest.Run(t, redisFactory(srv.Namespace, func(t *testing.T) goredis.UniversalClient { return srv.Client(t) }))
}

func TestConformanceCluster(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3)
	workflowtest.Run(t, redisFactory(c.Namespace, func(t *testing.T) goredis.UniversalClient { return c.Client(t) }))
}
