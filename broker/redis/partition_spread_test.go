package redis_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/redis"
	"github.com/conveyor-jobs/conveyor/internal/redistest"
)

// commandCalls returns, per master address, the total calls of every
// command (INFO commandstats).
func commandCalls(t *testing.T, ctx context.Context, cc *goredis.ClusterClient) map[string]int64 {
	t.Helper()
	var mu sync.Mutex
	out := map[string]int64{}
	err := cc.ForEachMaster(ctx, func(ctx context.Context, c *goredis.Client) error {
		info, err := c.Info(ctx, "commandstats").Result()
		if err != nil {
			return err
		}
		var n int64
		for _, line := range strings.Split(info, "\n") {
			if !strings.HasPrefix(line, "cmdstat_") || strings.HasPrefix(line, "cmdstat_info:") || strings.HasPrefix(line, "cmdstat_cluster") {
				continue
			}
			_, rest, _ := strings.Cut(line, "calls=")
			calls, _, _ := strings.Cut(rest, ",")
			v, _ := strconv.ParseInt(calls, 10, 64)
			n += v
		}
		mu.Lock()
		out[c.Options().Addr] = n
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestPartitionSpread: on a 3-master Cluster, a topic of 12 partitions has
// 4 partitions on each master, and publishing and processing its jobs
// spreads the commands over the masters within 15 % of a third each; with
// 1 partition every command of the topic runs on one master.
// CONVEYOR_SPREAD_JOBS sets the job count (default 1,200).
func TestPartitionSpread(t *testing.T) {
	t.Parallel()
	jobs := 1200
	if s := os.Getenv("CONVEYOR_SPREAD_JOBS"); s != "" {
		jobs, _ = strconv.Atoi(s)
	}
	c := redistest.StartCluster(t, 3)
	cc := c.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, n := range []int{12, 1} {
		b, err := redis.New(cc, &redis.Options{Namespace: fmt.Sprintf("%s-%d", c.Namespace, n), Consumer: "c", Block: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if err := b.SetPartitions(ctx, "spread", n); err != nil {
			t.Fatal(err)
		}
		if n > 1 {
			ps, err := b.InspectPartitions(ctx, "spread")
			if err != nil {
				t.Fatal(err)
			}
			perNode := map[string]int{}
			for _, p := range ps {
				perNode[p.Node]++
			}
			t.Logf("%d partitions per master: %v", n, perNode)
			if len(perNode) != 3 {
				t.Fatalf("partitions on %d masters, want 3: %v", len(perNode), perNode)
			}
			for node, k := range perNode {
				if k != n/3 {
					t.Errorf("master %s holds %d partitions, want %d", node, k, n/3)
				}
			}
		}
		// Warm up (groups, registry) so the counted part is steady work.
		if _, err := b.Fetch(ctx, []string{"spread"}, 10); err != nil && ctx.Err() != nil {
			t.Fatal(err)
		}
		before := commandCalls(t, ctx, cc)
		ms := make([]broker.Message, jobs)
		for i := range ms {
			ms[i] = broker.Message{Topic: "spread", Payload: []byte("x"), Key: strconv.Itoa(i)}
		}
		for start := 0; start < len(ms); start += 100 {
			if _, err := b.PublishBatch(ctx, ms[start:min(start+100, len(ms))]); err != nil {
				t.Fatal(err)
			}
		}
		done := 0
		for done < jobs {
			ds, err := b.Fetch(ctx, []string{"spread"}, 100)
			if err != nil && ctx.Err() != nil {
				t.Fatal(err)
			}
			if err := b.Ack(ctx, ds...); err != nil {
				t.Fatal(err)
			}
			done += len(ds)
		}
		after := commandCalls(t, ctx, cc)
		var total int64
		delta := map[string]int64{}
		for node, v := range after {
			delta[node] = v - before[node]
			total += delta[node]
		}
		t.Logf("%d partitions, %d jobs: commands per master %v (total %d)", n, jobs, delta, total)
		third := float64(total) / 3
		busy := 0
		for node, d := range delta {
			if n > 1 && (float64(d) < third*0.85 || float64(d) > third*1.15) {
				t.Errorf("%d partitions: master %s ran %d of %d commands, want within 15%% of %.0f", n, node, d, total, third)
			}
			if float64(d) > float64(total)*0.05 {
				busy++
			}
		}
		if n == 1 && busy != 1 {
			t.Errorf("1 partition: %d masters ran more than 5%% of the commands, want 1: %v", busy, delta)
		}
	}
}
