package redis_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/brokertest"
	"github.com/conveyor-jobs/conveyor/broker/redis"
	"github.com/conveyor-jobs/conveyor/internal/redistest"
)

// conformanceFactory returns a brokertest.Factory on the Redis that client
// connects to: every call gets a fresh namespace under prefix and its own
// client.
func conformanceFactory(prefix string, client func(t *testing.T) goredis.UniversalClient) brokertest.Factory {
	var n atomic.Int64
	return func(t *testing.T, opts brokertest.Options) func(string) broker.Broker {
		rdb := client(t)
		ns := fmt.Sprintf("%s-%d", prefix, n.Add(1))
		return func(consumer string) broker.Broker {
			b, err := redis.New(rdb, &redis.Options{
				Namespace:     ns,
				Consumer:      consumer,
				Lease:         opts.Lease,
				MaxDeliveries: opts.MaxDeliveries,
				Block:         100 * time.Millisecond,
				ClaimInterval: opts.Lease / 5,
			})
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
}

func TestConformance(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	brokertest.Run(t, conformanceFactory(srv.Namespace, func(t *testing.T) goredis.UniversalClient { return srv.Client(t) }))
}

// TestConformanceCluster runs the suite on a 3-master Redis Cluster.
func TestConformanceCluster(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3)
	brokertest.Run(t, conformanceFactory(c.Namespace, func(t *testing.T) goredis.UniversalClient { return c.Client(t) }))
}

// TestConformancePartitioned runs the suite with every topic in 4
// partitions, on a single Redis and on a 3-master Cluster.
func TestConformancePartitioned(t *testing.T) {
	t.Parallel()
	t.Run("Single", func(t *testing.T) {
		t.Parallel()
		srv := redistest.Start(t)
		brokertest.RunWith(t, conformanceFactory(srv.Namespace, func(t *testing.T) goredis.UniversalClient { return srv.Client(t) }),
			brokertest.Options{Partitions: 4})
	})
	t.Run("Cluster", func(t *testing.T) {
		t.Parallel()
		c := redistest.StartCluster(t, 3)
		// A fetch of several partitioned topics on Cluster asks every
		// partition first (one more round trip): a longer lease keeps the
		// subtests that hold many deliveries unacknowledged clear of
		// redeliveries on a loaded machine.
		brokertest.RunWith(t, conformanceFactory(c.Namespace, func(t *testing.T) goredis.UniversalClient { return c.Client(t) }),
			brokertest.Options{Partitions: 4, Lease: 600 * time.Millisecond})
	})
}
