package redis_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/brokertest"
	"github.com/conveyor-jobs/conveyor/broker/redis"
	"github.com/conveyor-jobs/conveyor/broker/redis/redistest"
)

// conformanceFactory returns a brokertest.Factory on srv: every call gets a
// fresh namespace and its own client.
func conformanceFactory(srv *redistest.Server) brokertest.Factory {
	var n atomic.Int64
	return func(t *testing.T, opts brokertest.Options) func(string) broker.Broker {
		rdb := srv.Client(t)
		ns := fmt.Sprintf("%s-%d", srv.Namespace, n.Add(1))
		return func(consumer string) broker.Broker {
			b, err := redis.New(rdb, &redis.Options{
				Namespace:     ns,
				Consumer:      consumer,
				Lease:         opts.Lease,
				MaxAttempts:   opts.MaxAttempts,
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
	brokertest.Run(t, conformanceFactory(redistest.Start(t)))
}
