// Package rediscluster joins redis-server processes into a Redis Cluster,
// for the test harness and the benchmark's throwaway Clusters.
package rediscluster

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Slots is the number of hash slots in a Redis Cluster.
const Slots = 16384

// Join makes a Cluster of the cluster-enabled redis-server nodes at
// addrs: it assigns the slots evenly over them (CLUSTER ADDSLOTSRANGE),
// introduces them to each other (CLUSTER MEET) and returns once every node
// reports cluster_state:ok and knows every other node, or ctx ends.
func Join(ctx context.Context, addrs []string) error {
	nodes := make([]*goredis.Client, len(addrs))
	for i, addr := range addrs {
		nodes[i] = goredis.NewClient(&goredis.Options{Addr: addr})
		defer nodes[i].Close()
	}
	for i, n := range nodes {
		lo, hi := i*Slots/len(addrs), (i+1)*Slots/len(addrs)-1
		if err := n.ClusterAddSlotsRange(ctx, lo, hi).Err(); err != nil {
			return fmt.Errorf("CLUSTER ADDSLOTSRANGE %d %d on %s: %w", lo, hi, addrs[i], err)
		}
	}
	host, port, _ := net.SplitHostPort(addrs[0])
	for i, n := range nodes[1:] {
		if err := n.ClusterMeet(ctx, host, port).Err(); err != nil {
			return fmt.Errorf("CLUSTER MEET from %s: %w", addrs[i+1], err)
		}
	}
	want := fmt.Sprintf("cluster_known_nodes:%d", len(addrs))
	for {
		var notReady string
		for i, n := range nodes {
			info, err := n.ClusterInfo(ctx).Result()
			if err != nil || !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, want) {
				notReady = addrs[i]
				break
			}
		}
		if notReady == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster node %s not ok: %w", notReady, ctx.Err())
		case <-time.After(50 * time.Millisecond): // gossip between external processes: nothing to block on
		}
	}
}
