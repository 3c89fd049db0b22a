package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/redis"
	"github.com/conveyor-jobs/conveyor/internal/rediscluster"
	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/server"
)

// ClusterPartitions are the partition counts the cluster scenario measures
// one topic with: all on one master, and spread over every master.
var ClusterPartitions = []int{1, 12}

// clusterMasters is the number of masters of the Cluster the cluster
// scenario starts when it is given none.
const clusterMasters = 3

// MasterStat is what one Redis Cluster master did during a cluster run.
type MasterStat struct {
	// Addr is the master's host:port.
	Addr string `json:"addr"`
	// Commands is the number of commands the master ran (INFO
	// commandstats, the benchmark's own INFO and CLUSTER calls left out),
	// and CommandShare its fraction of all masters' commands.
	Commands     int64   `json:"commands"`
	CommandShare float64 `json:"command_share"`
	// CPUUsPerJob is the master's CPU time (INFO cpu) per job of the run,
	// in microseconds.
	CPUUsPerJob float64 `json:"cpu_us_per_job"`
}

// runCluster measures one topic of N jobs on a Redis Cluster, published
// (PublishBatch) and processed (a server, no-op handler) with the topic in
// one partition and in 12: jobs/s, and for each master its share of the
// commands and its CPU time per job. The projected throughput is what the
// Cluster would sustain with one core per master: the busiest master
// saturates first.
func runCluster(ctx context.Context, e *env) error {
	url, err := e.clusterURL(ctx)
	if err != nil {
		return err
	}
	for _, n := range ClusterPartitions {
		row := fmt.Sprintf("%s-%d", ScenarioCluster, n)
		res, err := e.clusterRun(ctx, url, n)
		if err != nil {
			return fmt.Errorf("bench: %s: %w", row, err)
		}
		e.report.add(ScenarioCluster, row, fmt.Sprintf("one topic in %d partition(s) on a %d-master Cluster: publish (untimed) + process, no-op handler", n, len(res.Masters)), res)
	}
	return nil
}

// clusterURL returns the Cluster to measure: Config.ClusterURL, or a
// throwaway Cluster of clusterMasters redis-server processes started once
// per Run and stopped at its end.
func (e *env) clusterURL(ctx context.Context) (string, error) {
	if e.cfg.ClusterURL != "" {
		return e.cfg.ClusterURL, nil
	}
	if e.cluster != "" {
		return e.cluster, nil
	}
	addrs, stop, err := startCluster(ctx, clusterMasters)
	if err != nil {
		return "", err
	}
	e.closers = append(e.closers, stop)
	e.cluster = "redis://" + strings.Join(addrs, ",")
	return e.cluster, nil
}

func (e *env) clusterRun(ctx context.Context, url string, partitions int) (RunResult, error) {
	ns := namespace(ScenarioCluster)
	b, err := redis.Open(url, &redis.Options{Namespace: ns, Consumer: "bench", Block: e.cfg.FloorBlock, Logger: e.quiet})
	if err != nil {
		return RunResult{}, fmt.Errorf("open Redis Cluster broker: %w", err)
	}
	defer b.Close()
	cc, ok := b.Client().(*goredis.ClusterClient)
	if !ok {
		return RunResult{}, fmt.Errorf("%s is not a Redis Cluster (give --cluster-url the seed nodes, h1:p1,h2:p2,…)", url)
	}
	defer func() { _ = cleanupCluster(cc, ns) }()
	rt := &roundTrips{}
	cc.AddHook(rt)
	if partitions > 1 {
		p, ok := any(b).(broker.Partitioner)
		if !ok {
			return RunResult{}, errors.New("the Redis broker cannot partition topics")
		}
		if err := p.SetPartitions(ctx, benchTopic, partitions); err != nil {
			return RunResult{}, err
		}
		if err := awaitRetired(ctx, b, benchTopic); err != nil {
			return RunResult{}, err
		}
	}
	before, err := masterStats(ctx, cc)
	if err != nil {
		return RunResult{}, err
	}
	n := e.cfg.N
	if err := enqueue(ctx, b, n, e.cfg.PayloadSize); err != nil {
		return RunResult{}, err
	}
	tr := newTracker(n)
	mux := job.NewMux()
	mux.HandleFunc(benchTopic, func(_ context.Context, j *job.Job) error {
		tr.mark(j.Payload)
		return nil
	})
	w := newAckWatch(b, n)
	srv, err := server.New(w, mux, &server.Options{Concurrency: e.cfg.Concurrency, Logger: e.quiet})
	if err != nil {
		return RunResult{}, err
	}
	res, _, err := e.drain(ctx, srv, w, rt, tr)
	if err != nil {
		return RunResult{}, err
	}
	info, err := b.Inspect(ctx, benchTopic)
	if err != nil {
		return RunResult{}, err
	}
	if info.Length != 0 || info.Pending != 0 || info.Delayed != 0 || info.DeadLetters != 0 {
		return RunResult{}, fmt.Errorf("after processing, topic %s: length %d, pending %d, delayed %d, dead letters %d", benchTopic, info.Length, info.Pending, info.Delayed, info.DeadLetters)
	}
	after, err := masterStats(ctx, cc)
	if err != nil {
		return RunResult{}, err
	}
	res.RedisCPUUsPerJob = 0
	var total int64
	for addr, a := range after {
		total += a.calls - before[addr].calls
	}
	for addr, a := range after {
		m := MasterStat{Addr: addr, Commands: a.calls - before[addr].calls}
		if total > 0 {
			m.CommandShare = float64(m.Commands) / float64(total)
		}
		m.CPUUsPerJob = float64((a.cpu - before[addr].cpu).Microseconds()) / float64(n)
		res.RedisCPUUsPerJob += m.CPUUsPerJob
		res.Masters = append(res.Masters, m)
	}
	slices.SortFunc(res.Masters, func(a, b MasterStat) int { return strings.Compare(a.Addr, b.Addr) })
	res.ProjectedJobsPerSec = projected(res.Masters)
	return res, nil
}

// projected returns the jobs/s at which the busiest master would use one
// core: 1 s over its CPU time per job.
func projected(ms []MasterStat) float64 {
	var busiest float64
	for _, m := range ms {
		busiest = max(busiest, m.CPUUsPerJob)
	}
	if busiest == 0 {
		return 0
	}
	return 1e6 / busiest
}

// masterCounters are the counters read from one master.
type masterCounters struct {
	calls int64
	cpu   time.Duration
}

// notCounted are the commands the benchmark itself sends to read the
// counters or that the client sends to learn the Cluster's layout.
var notCounted = map[string]bool{"info": true, "cluster": true, "ping": true, "hello": true, "client": true, "command": true, "scan": true, "unlink": true}

// masterStats reads INFO commandstats and INFO cpu of every master.
func masterStats(ctx context.Context, cc *goredis.ClusterClient) (map[string]masterCounters, error) {
	out := map[string]masterCounters{}
	var mu = make(chan struct{}, 1)
	err := cc.ForEachMaster(ctx, func(ctx context.Context, c *goredis.Client) error {
		info, err := c.Info(ctx, "commandstats", "cpu").Result()
		if err != nil {
			return err
		}
		mc := parseMasterInfo(info)
		mu <- struct{}{}
		out[c.Options().Addr] = mc
		<-mu
		return nil
	})
	return out, err
}

// parseMasterInfo sums the calls of INFO commandstats (commands in
// notCounted left out) and used_cpu_user + used_cpu_sys of INFO cpu.
func parseMasterInfo(info string) masterCounters {
	var mc masterCounters
	var cpu float64
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimSpace(line)
		if name, rest, ok := strings.Cut(line, ":"); ok {
			if cmd, ok := strings.CutPrefix(name, "cmdstat_"); ok {
				base, _, _ := strings.Cut(cmd, "|")
				if notCounted[base] {
					continue
				}
				for _, f := range strings.Split(rest, ",") {
					if v, ok := strings.CutPrefix(f, "calls="); ok {
						n, _ := strconv.ParseInt(v, 10, 64)
						mc.calls += n
					}
				}
				continue
			}
			if name == "used_cpu_user" || name == "used_cpu_sys" {
				f, _ := strconv.ParseFloat(rest, 64)
				cpu += f
			}
		}
	}
	mc.cpu = time.Duration(cpu * float64(time.Second))
	return mc
}

// cleanupCluster deletes every key of namespace ns on every master.
func cleanupCluster(cc *goredis.ClusterClient, ns string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return cc.ForEachMaster(ctx, func(ctx context.Context, c *goredis.Client) error {
		var cursor uint64
		for {
			keys, next, err := c.Scan(ctx, cursor, ns+":*", 1000).Result()
			if err != nil {
				return err
			}
			for _, k := range keys { // keys of many slots: one at a time
				if err := c.Unlink(ctx, k).Err(); err != nil {
					return err
				}
			}
			if cursor = next; cursor == 0 {
				return nil
			}
		}
	})
}

// startCluster starts a Redis Cluster of masters redis-server processes on
// free loopback ports (each with its bus port, +10000, free too), with the
// slots split evenly, and waits until every node reports cluster_state:ok.
// It returns the addresses and a function that stops the processes.
func startCluster(ctx context.Context, masters int) ([]string, func(), error) {
	bin, err := redisServerPath()
	if err != nil {
		return nil, nil, err
	}
	var (
		nodes []*throwaway
		addrs []string
	)
	stop := func() {
		for _, n := range nodes {
			n.stop()
		}
	}
	for range masters {
		t, err := startClusterNode(ctx, bin)
		if err != nil {
			stop()
			return nil, nil, err
		}
		nodes = append(nodes, t)
		addrs = append(addrs, strings.TrimPrefix(t.url, "redis://"))
	}
	if err := rediscluster.Join(ctx, addrs); err != nil {
		stop()
		return nil, nil, fmt.Errorf("bench: throwaway Redis Cluster: %w", err)
	}
	return addrs, stop, nil
}

// startClusterNode starts one cluster-enabled redis-server.
func startClusterNode(ctx context.Context, bin string) (*throwaway, error) {
	var lastErr error
	for range 10 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		if port+10000 > 65535 || !portFree(port+10000) {
			continue
		}
		dir, err := os.MkdirTemp("", "conveyor-bench-cluster-")
		if err != nil {
			return nil, err
		}
		t, err := launchRedis(ctx, bin, dir, port, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000")
		if err == nil {
			return t, nil
		}
		_ = os.RemoveAll(dir)
		lastErr = err
	}
	return nil, fmt.Errorf("bench: throwaway Redis Cluster node: %v", lastErr)
}

// portFree reports whether a loopback port can be listened on now.
func portFree(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}
