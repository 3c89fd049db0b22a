package redistest

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/internal/rediscluster"
)

// Cluster is a Redis Cluster of redis-server processes (masters only, no replicas) for
// one test, with every slot assigned. It is torn down when the test ends.
type Cluster struct {
	// Namespace is a fresh random key prefix, as for Server.
	Namespace string
	// Addrs are the nodes' host:port addresses, one per master.
	Addrs []string
}

// Client returns a cluster client over all nodes, closed when the test ends.
func (c *Cluster) Client(t testing.TB) *goredis.ClusterClient {
	t.Helper()
	rdb := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: c.Addrs})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// Key returns Namespace + ":" + parts joined by ":", as Server.Key does.
func (c *Cluster) Key(parts ...string) string {
	return strings.Join(append([]string{c.Namespace}, parts...), ":")
}

// StartCluster starts a Redis Cluster of masters redis-server processes (3 if masters < 1)
// on free loopback ports, assigns the slots evenly (CLUSTER ADDSLOTSRANGE), joins the
// nodes (CLUSTER MEET) and returns once every node reports cluster_state:ok and knows
// every other node. It needs redis-server on PATH and skips the test (fails it when CI is
// "true") without it.
func StartCluster(t testing.TB, masters int) *Cluster {
	t.Helper()
	if masters < 1 {
		masters = 3
	}
	bin, err := redisServer()
	if err != nil {
		noRedis(t, "StartCluster needs redis-server (apt-get install redis-server)", nil)
	}
	c := &Cluster{Namespace: newNamespace(t)}
	for range masters {
		p := &proc{
			bin: bin,
			dir: t.TempDir(),
			args: []string{
				"--cluster-enabled", "yes",
				"--cluster-config-file", "nodes.conf",
				"--cluster-node-timeout", "5000",
			},
			pick: clusterPort,
		}
		addr, err := p.launch()
		if err != nil {
			t.Fatalf("redistest: cluster node: %v", err)
		}
		t.Cleanup(func() { p.halt(true) })
		c.Addrs = append(c.Addrs, addr)
	}

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := rediscluster.Join(ctx, c.Addrs); err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Logf("redistest: using a Redis Cluster of %d redis-server %s processes at %s, namespace %s",
		masters, serverVersion(bin), strings.Join(c.Addrs, " "), c.Namespace)
	return c
}

// clusterPort picks a port p with p+10000 (the cluster bus) free too.
func clusterPort() ([]int, error) {
	for range 50 {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		if p+10000 > 65535 {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p+10000)))
		if err != nil {
			continue
		}
		_ = l.Close()
		return []int{p}, nil
	}
	return nil, fmt.Errorf("no free port pair p, p+10000 for a cluster node")
}

// StandaloneAndCluster runs test as two parallel subtests, "standalone" on a single
// Redis (Start) and "cluster" on a one-node Redis Cluster (StartCluster), each given a
// client and a namespace of its own.
func StandaloneAndCluster(t *testing.T, test func(t *testing.T, rdb goredis.UniversalClient, ns string)) {
	t.Helper()
	t.Run("standalone", func(t *testing.T) {
		t.Parallel()
		s := Start(t)
		test(t, s.Client(t), s.Namespace)
	})
	t.Run("cluster", func(t *testing.T) {
		t.Parallel()
		c := StartCluster(t, 1)
		test(t, c.Client(t), c.Namespace)
	})
}
