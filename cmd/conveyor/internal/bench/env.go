package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/redis"
)

// stallTimeout is how long a scenario may go without progress before it
// fails instead of hanging: jobs that never come back mean a bug.
const stallTimeout = 30 * time.Second

// env is what every scenario run shares.
type env struct {
	cfg    Config
	url    string                  // Redis URL ("" when Redis is not used)
	rdb    goredis.UniversalClient // admin client: checks and cleanup
	report *Report
	quiet  *slog.Logger
	calls  []time.Duration // publish-single: each call's duration
	// cluster is the URL of the throwaway Cluster the cluster scenario
	// started ("" before); closers stop what scenarios started for the
	// whole Run.
	cluster string
	closers []func()
}

// namespace returns a fresh key namespace for one scenario run.
func namespace(scenario string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "bench-" + scenario + "-" + hex.EncodeToString(b[:])
}

// openRedis opens conveyor's Redis broker on a fresh namespace, its round
// trips counted by rt, and returns it with a function that closes it and
// deletes every key of the namespace.
func (e *env) openRedis(scenario string, rt *roundTrips) (*redis.Broker, func(), error) {
	b, err := redis.Open(e.url, &redis.Options{
		Namespace: namespace(scenario),
		Consumer:  "bench",
		Block:     e.cfg.FloorBlock,
		Logger:    e.quiet,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("bench: open Redis broker: %w", err)
	}
	if rt != nil {
		b.Client().AddHook(rt)
	}
	return b, func() {
		_ = b.Close()
		_ = e.cleanup(b.Options().Namespace)
	}, nil
}

// cleanup deletes every key of namespace ns.
func (e *env) cleanup(ns string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var cursor uint64
	for {
		keys, next, err := e.rdb.Scan(ctx, cursor, ns+":*", 1000).Result()
		if err != nil {
			return fmt.Errorf("bench: clean up namespace %s: %w", ns, err)
		}
		if len(keys) > 0 {
			if err := e.rdb.Unlink(ctx, keys...).Err(); err != nil {
				return fmt.Errorf("bench: clean up namespace %s: %w", ns, err)
			}
		}
		if cursor = next; cursor == 0 {
			return nil
		}
	}
}

// streamState returns the length and pending count of stream key.
func (e *env) streamState(ctx context.Context, key, group string) (length, pending int64, err error) {
	if length, err = e.rdb.XLen(ctx, key).Result(); err != nil {
		return 0, 0, err
	}
	if group == "" {
		return length, 0, nil
	}
	p, err := e.rdb.XPending(ctx, key, group).Result()
	if err != nil && strings.HasPrefix(err.Error(), "NOGROUP") {
		return length, 0, nil // never read: nothing pending
	}
	if err != nil {
		return length, 0, err
	}
	return length, p.Count, nil
}

// topicState returns the length (unread + pending) and the pending count of
// topic in b: on Redis, read from its stream when the bench's topics have
// one partition, else summed over its partitions by Inspect.
func (e *env) topicState(ctx context.Context, b broker.Broker, topic string) (length, pending int64, err error) {
	if rb, ok := b.(*redis.Broker); ok && e.cfg.Partitions <= 1 {
		o := rb.Options()
		return e.streamState(ctx, o.Namespace+":{"+topic+"}:stream", o.Group)
	}
	insp, ok := b.(broker.Inspector)
	if !ok {
		return 0, 0, fmt.Errorf("bench: broker %T cannot be inspected", b)
	}
	info, err := insp.Inspect(ctx, topic)
	if err != nil {
		return 0, 0, err
	}
	return info.Length, info.Pending, nil
}

// redisCPU returns the Redis server's CPU time (used_cpu_user +
// used_cpu_sys of INFO cpu), or 0 when it cannot be read.
func (e *env) redisCPU() time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := e.rdb.Info(ctx, "cpu").Result()
	if err != nil {
		return 0
	}
	var total float64
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_user" || k == "used_cpu_sys") {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0
			}
			total += f
		}
	}
	return time.Duration(total * float64(time.Second))
}

// result turns a measurement of jobs into a RunResult.
func result(jobs int, m measurement) RunResult {
	r := RunResult{Jobs: jobs, Seconds: m.elapsed.Seconds(), RSSMB: float64(m.rss) / (1 << 20)}
	if m.elapsed > 0 {
		r.JobsPerSec = float64(jobs) / m.elapsed.Seconds()
	}
	if jobs > 0 {
		r.AllocsPerJob = float64(m.mallocs) / float64(jobs)
		r.RoundTripsPerJob = float64(m.trips) / float64(jobs)
		r.CommandsPerJob = float64(m.cmds) / float64(jobs)
		r.CPUUsPerJob = float64(m.cpu.Microseconds()) / float64(jobs)
		r.RedisCPUUsPerJob = float64(m.rcpu.Microseconds()) / float64(jobs)
	}
	return r
}
