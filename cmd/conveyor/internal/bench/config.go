package bench

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
)

// Scenario names, in the order they run.
const (
	ScenarioFloor        = "floor"
	ScenarioPublish      = "publish"
	ScenarioProcess      = "process"
	ScenarioProcessStack = "process-stack"
	ScenarioLatency      = "latency"
	ScenarioMemory       = "memory"
	ScenarioDelayed      = "delayed"
	ScenarioTopics       = "topics"
	ScenarioPriorities   = "priorities"
	ScenarioCluster      = "cluster"
	ScenarioFairness     = "fairness"
)

// Scenarios lists every scenario, in the order [Run] runs them.
var Scenarios = []string{ScenarioFloor, ScenarioPublish, ScenarioProcess, ScenarioProcessStack, ScenarioLatency, ScenarioMemory, ScenarioDelayed, ScenarioTopics, ScenarioPriorities, ScenarioFairness, ScenarioCluster}

// DefaultScenarios are the scenarios run when none is named: all but
// fairness, which takes at least a second per run whatever N, and cluster,
// which starts a Redis Cluster of its own (or needs ClusterURL).
var DefaultScenarios = slices.DeleteFunc(slices.Clone(Scenarios), func(s string) bool { return s == ScenarioCluster || s == ScenarioFairness })

// Defaults of [Config] fields left at their zero value.
const (
	DefaultN           = 100000
	DefaultConcurrency = 64
	DefaultPayloadSize = 32
	DefaultRate        = 2000
	DefaultRuns        = 3
	// DefaultLatencyJobs is how many jobs the latency scenario publishes at
	// most (5 s at the default rate); it publishes min(N, LatencyJobs).
	DefaultLatencyJobs = 10000
	// FloorReaders is the number of goroutines consuming in the floor
	// scenario.
	FloorReaders = 8
	// BatchSize is the size of every pipelined or batched write and read.
	BatchSize = 100
)

// minPayload is the smallest payload the scenarios accept: the latency
// scenario writes a 19-digit timestamp and a 10-digit sequence number.
const minPayload = 30

// Config says what to measure. The zero value of every field selects its
// default; a Config is not modified by [Run].
type Config struct {
	// N is the number of jobs per scenario. Default 100000.
	N int
	// Concurrency is the number of server workers and of concurrent
	// publishers in publish-concurrent. Default 64.
	Concurrency int
	// PayloadSize is the size of every job's payload in bytes. Default 32,
	// at least 30.
	PayloadSize int
	// Rate is the publish rate of the latency scenario, in jobs per second.
	// Default 2000.
	Rate int
	// LatencyRates are more publish rates of the latency scenario, each
	// measured after Rate in the same run, as the rows latency-<rate> and
	// latency-ack-<rate>. Default none.
	LatencyRates []int
	// RSSSamples are the points of the processing scenarios (process,
	// process-stack, memory), in percent of N acknowledged, at which the
	// process's resident set size is read, to show whether it stays flat
	// (RunResult.RSSSamples). Default none.
	RSSSamples []int
	// LatencyJobs caps the jobs the latency and delayed scenarios publish.
	// Default 10000.
	LatencyJobs int
	// Scenarios to run, from [Scenarios]. Default all.
	Scenarios []string
	// Runs is how many times each scenario runs; rows report the median.
	// Default 3.
	Runs int
	// RedisURL is the Redis to measure against. When empty, Run starts a
	// throwaway redis-server from PATH on a free loopback port (with
	// --save "" and no AOF) and stops it at the end. Scenarios that need
	// Redis fail when there is neither.
	RedisURL string
	// Progress receives one line per scenario run while Run works; nil
	// means none.
	Progress io.Writer
	// CPUProfile and MemProfile, when set, are files Run writes a CPU
	// profile (of the whole run) and a heap profile (at the end) to.
	CPUProfile string
	MemProfile string
	// ClusterURL is the Redis Cluster the cluster scenario measures
	// (redis://h1:p1,h2:p2,…). When empty, the scenario starts a throwaway
	// Cluster of 3 redis-server processes from PATH and stops it at the
	// end.
	ClusterURL string
	// FloorBlock is how long floor readers and the Redis broker block in
	// XREADGROUP when the stream is empty. Default 100ms. It only affects
	// how fast idle readers notice the end; a read returns as soon as
	// entries arrive.
	FloorBlock time.Duration
	// Partitions, when above 1, runs the process and process-stack
	// scenarios on a topic of that many partitions
	// (broker.Partitioner.SetPartitions before the jobs are enqueued).
	// Default 0: one partition.
	Partitions int
}

// ErrInvalidConfig is matched by the errors [Run] returns for a bad
// [Config].
var ErrInvalidConfig = errors.New("bench: invalid configuration")

// withDefaults validates c and returns a copy with defaults filled in.
func (c Config) withDefaults() (Config, error) {
	if c.N == 0 {
		c.N = DefaultN
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.PayloadSize == 0 {
		c.PayloadSize = DefaultPayloadSize
	}
	if c.Rate == 0 {
		c.Rate = DefaultRate
	}
	if c.LatencyJobs == 0 {
		c.LatencyJobs = DefaultLatencyJobs
	}
	if c.Runs == 0 {
		c.Runs = DefaultRuns
	}
	if c.FloorBlock == 0 {
		c.FloorBlock = 100 * time.Millisecond
	}
	switch {
	case c.N < 0:
		return c, fmt.Errorf("%w: -n %d: must be positive", ErrInvalidConfig, c.N)
	case c.Concurrency < 0:
		return c, fmt.Errorf("%w: --concurrency %d: must be positive", ErrInvalidConfig, c.Concurrency)
	case c.PayloadSize < minPayload:
		return c, fmt.Errorf("%w: --payload-size %d: must be at least %d (the latency scenario writes a timestamp and a sequence number)", ErrInvalidConfig, c.PayloadSize, minPayload)
	case c.Rate < 0:
		return c, fmt.Errorf("%w: --rate %d: must be positive", ErrInvalidConfig, c.Rate)
	case c.LatencyJobs < 0:
		return c, fmt.Errorf("%w: latency jobs %d: must be positive", ErrInvalidConfig, c.LatencyJobs)
	case c.Runs < 0:
		return c, fmt.Errorf("%w: --runs %d: must be positive", ErrInvalidConfig, c.Runs)
	case slices.ContainsFunc(c.LatencyRates, func(r int) bool { return r <= 0 }):
		return c, fmt.Errorf("%w: --latency-rates %v: every rate must be positive", ErrInvalidConfig, c.LatencyRates)
	case slices.ContainsFunc(c.RSSSamples, func(p int) bool { return p <= 0 || p > 100 }):
		return c, fmt.Errorf("%w: --rss-samples %v: every point must be a percentage in (0, 100]", ErrInvalidConfig, c.RSSSamples)
	case c.FloorBlock < 0 || c.FloorBlock > 2*time.Second:
		return c, fmt.Errorf("%w: floor block %v: must be in (0, 2s]", ErrInvalidConfig, c.FloorBlock)
	case c.Partitions < 0 || c.Partitions > broker.MaxPartitions:
		return c, fmt.Errorf("%w: --partitions %d: must be between 0 and %d", ErrInvalidConfig, c.Partitions, broker.MaxPartitions)
	}
	c.LatencyRates = slices.Clone(c.LatencyRates)
	c.RSSSamples = slices.Clone(c.RSSSamples)
	slices.Sort(c.RSSSamples)
	c.RSSSamples = slices.Compact(c.RSSSamples)
	if len(c.Scenarios) == 0 {
		c.Scenarios = slices.Clone(DefaultScenarios)
	} else {
		want := map[string]bool{}
		for _, s := range c.Scenarios {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			if !slices.Contains(Scenarios, s) {
				return c, fmt.Errorf("%w: unknown scenario %q (known: %s)", ErrInvalidConfig, s, strings.Join(Scenarios, ", "))
			}
			want[s] = true
		}
		if len(want) == 0 {
			return c, fmt.Errorf("%w: no scenario selected (known: %s)", ErrInvalidConfig, strings.Join(Scenarios, ", "))
		}
		c.Scenarios = nil
		for _, s := range Scenarios {
			if want[s] {
				c.Scenarios = append(c.Scenarios, s)
			}
		}
	}
	return c, nil
}

// ParseScenarios splits a comma-separated list of scenario names.
func ParseScenarios(list string) []string {
	var out []string
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// needsRedis reports whether any selected scenario talks to Redis.
func (c Config) needsRedis() bool {
	for _, s := range c.Scenarios {
		if s != ScenarioMemory && s != ScenarioCluster {
			return true
		}
	}
	return false
}
