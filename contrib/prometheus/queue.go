package prometheus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/conveyor-jobs/conveyor/broker"
)

// QueueCollectorOptions configures a [QueueCollector]. A nil
// *QueueCollectorOptions means all defaults.
type QueueCollectorOptions struct {
	// Interval between refreshes. Zero means 15 s.
	Interval time.Duration
	// Timeout bounds one refresh. Zero means Interval.
	Timeout time.Duration
	// Topics to describe. Nil means every topic the broker lists
	// (Inspector.Topics), re-listed on each refresh.
	Topics []string
	// Namespace prefixes every metric name. Empty means "conveyor".
	Namespace string
	// ConstLabels are added to every metric.
	ConstLabels prometheus.Labels
	// Logger receives refresh errors at level Warn. Nil discards them; they
	// are counted either way.
	Logger *slog.Logger
	// Now returns the current time, for the last-refresh timestamp. Nil
	// means time.Now.
	Now func() time.Time
	// Partitions adds a per-partition breakdown of every topic
	// (conveyor_queue_partition_*), for brokers that give one
	// ([broker.PartitionInspector]). It costs one more broker call per
	// topic and refresh. False exports each topic as one, all partitions
	// added up.
	Partitions bool
}

// QueueCollector exports per-topic queue gauges gathered from a
// [broker.Inspector]:
//
//	conveyor_queue_length{topic}        jobs in the stream: unread plus pending
//	conveyor_queue_pending{topic}       delivered and not yet settled
//	conveyor_queue_lag{topic}           not yet delivered to the consumer group
//	conveyor_queue_delayed{topic}       waiting for their due time
//	conveyor_queue_dead_letters{topic}  in the topic's dead-letter topic
//	conveyor_queue_consumers{topic}     consumers known to the topic's groups
//	conveyor_topic_paused{topic}        1 while the topic is paused (no worker fetches it), else 0
//	conveyor_queue_last_refresh_timestamp_seconds  end of the last fully successful refresh
//	conveyor_queue_refresh_errors_total            failed Topics or Inspect calls
//
// A topic split into partitions is one topic: its gauges add up all
// partitions. With [QueueCollectorOptions.Partitions], each partition is
// also exported on its own, labelled with its index and the node (Redis
// Cluster master) that holds it:
//
//	conveyor_queue_partition_length{topic,partition,node}
//	conveyor_queue_partition_pending{topic,partition,node}
//	conveyor_queue_partition_lag{topic,partition,node}
//	conveyor_queue_partition_delayed{topic,partition,node}
//	conveyor_queue_partition_dead_letters{topic,partition,node}
//
// The broker is asked on an interval, by [QueueCollector.Run] or
// [QueueCollector.Start], never at scrape time: Collect only reads the values
// cached by the last refresh, so a scrape costs no broker round trip however
// many topics there are and however often Prometheus scrapes. Before the first
// refresh no per-topic gauge is exported and the timestamp is 0. When Inspect
// fails for a topic, its previous values are kept (and the error counted); a
// topic the broker no longer lists is dropped.
//
// All methods are safe for concurrent use.
type QueueCollector struct {
	insp     broker.Inspector
	interval time.Duration
	timeout  time.Duration
	topics   []string
	logger   *slog.Logger
	now      func() time.Time

	gauges      [numGauges]*prometheus.Desc
	partGauges  [numPartGauges]*prometheus.Desc
	partitions  bool
	lastRefresh *prometheus.Desc
	errorsDesc  *prometheus.Desc

	snap   atomic.Pointer[queueSnapshot]
	errors atomic.Uint64

	refreshMu sync.Mutex // one refresh at a time

	runMu   sync.Mutex // guards running, cancel, done
	running bool
	cancel  context.CancelFunc
	done    chan struct{}
}

// queueSnapshot is what one refresh saw. It is never modified once stored.
type queueSnapshot struct {
	topics map[string]*[numGauges]float64
	// parts holds the per-partition breakdown of each topic, when asked.
	parts map[string][]broker.PartitionInfo
	// refreshed is the Unix time in seconds of the last fully successful
	// refresh, 0 if none.
	refreshed float64
}

// The gauges, in the order of QueueCollector.gauges.
const (
	gaugeLength = iota
	gaugePending
	gaugeLag
	gaugeDelayed
	gaugeDeadLetters
	gaugeConsumers
	gaugePaused
	numGauges
)

var gaugeNames = [numGauges][2]string{
	{"length", "Jobs in the topic's stream: unread plus pending."},
	{"pending", "Jobs delivered and not yet settled, over all consumer groups."},
	{"lag", "Jobs not yet delivered to the consumer group (the largest over groups)."},
	{"delayed", "Jobs waiting for their due time."},
	{"dead_letters", "Jobs in the topic's dead-letter topic."},
	{"consumers", "Consumers known to the topic's consumer groups."},
	{"paused", "1 while the topic is paused (no worker fetches its jobs), else 0."},
}

// The per-partition gauges, in the order of QueueCollector.partGauges.
const (
	partLength = iota
	partPending
	partLag
	partDelayed
	partDeadLetters
	numPartGauges
)

var partGaugeNames = [numPartGauges][2]string{
	{"partition_length", "Jobs in the partition's stream: unread plus pending."},
	{"partition_pending", "Jobs of the partition delivered and not yet settled."},
	{"partition_lag", "Jobs of the partition not yet delivered."},
	{"partition_delayed", "Jobs of the partition waiting for their due time."},
	{"partition_dead_letters", "Dead letters of the partition."},
}

// ErrCollectorRunning is returned by [QueueCollector.Run] when the collector
// is already running.
var ErrCollectorRunning = errors.New("conveyor: queue collector already running")

var _ prometheus.Collector = (*QueueCollector)(nil)

// NewQueueCollector returns a collector of insp's queue gauges. Register it
// with a prometheus.Registerer, and start it with Run or Start: until then it
// exports no gauges.
func NewQueueCollector(insp broker.Inspector, opts *QueueCollectorOptions) *QueueCollector {
	if opts == nil {
		opts = &QueueCollectorOptions{}
	}
	c := &QueueCollector{
		insp:       insp,
		interval:   opts.Interval,
		timeout:    opts.Timeout,
		topics:     slices.Clone(opts.Topics), // nil stays nil: all topics
		logger:     opts.Logger,
		now:        opts.Now,
		partitions: opts.Partitions,
	}
	if c.interval <= 0 {
		c.interval = 15 * time.Second
	}
	if c.timeout <= 0 {
		c.timeout = c.interval
	}
	if c.now == nil {
		c.now = time.Now
	}
	ns := opts.Namespace
	if ns == "" {
		ns = "conveyor"
	}
	for i, g := range gaugeNames {
		sub := "queue"
		if i == gaugePaused {
			sub = "topic" // a state of the topic, not a count of its queue
		}
		c.gauges[i] = prometheus.NewDesc(prometheus.BuildFQName(ns, sub, g[0]), g[1],
			[]string{"topic"}, opts.ConstLabels)
	}
	for i, g := range partGaugeNames {
		c.partGauges[i] = prometheus.NewDesc(prometheus.BuildFQName(ns, "queue", g[0]), g[1],
			[]string{"topic", "partition", "node"}, opts.ConstLabels)
	}
	c.lastRefresh = prometheus.NewDesc(prometheus.BuildFQName(ns, "queue", "last_refresh_timestamp_seconds"),
		"Unix time of the end of the last refresh of the queue gauges that succeeded for every topic (0 before the first).",
		nil, opts.ConstLabels)
	c.errorsDesc = prometheus.NewDesc(prometheus.BuildFQName(ns, "queue", "refresh_errors_total"),
		"Broker calls that failed while refreshing the queue gauges.",
		nil, opts.ConstLabels)
	c.snap.Store(&queueSnapshot{})
	return c
}

// Describe sends the descriptors of c's metrics to ch.
func (c *QueueCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.gauges {
		ch <- d
	}
	if c.partitions {
		for _, d := range c.partGauges {
			ch <- d
		}
	}
	ch <- c.lastRefresh
	ch <- c.errorsDesc
}

// Collect sends the cached values to ch. It makes no broker call.
func (c *QueueCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.snap.Load()
	for topic, vs := range s.topics {
		for i, v := range vs {
			ch <- prometheus.MustNewConstMetric(c.gauges[i], prometheus.GaugeValue, v, topic)
		}
	}
	for topic, ps := range s.parts {
		for _, p := range ps {
			idx := strconv.Itoa(p.Partition)
			vs := [numPartGauges]int64{p.Length, p.Pending, p.Lag, p.Delayed, p.DeadLetters}
			for i, v := range vs {
				ch <- prometheus.MustNewConstMetric(c.partGauges[i], prometheus.GaugeValue, float64(v), topic, idx, p.Node)
			}
		}
	}
	ch <- prometheus.MustNewConstMetric(c.lastRefresh, prometheus.GaugeValue, s.refreshed)
	ch <- prometheus.MustNewConstMetric(c.errorsDesc, prometheus.CounterValue, float64(c.errors.Load()))
}

// Refresh asks the broker for the state of every topic now and caches it for
// the next scrapes. Run and Start call it on their interval; call it yourself
// to drive refreshes by hand. It returns the errors of the broker calls that
// failed, joined.
func (c *QueueCollector) Refresh(ctx context.Context) error {
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	old := c.snap.Load()
	topics := c.topics
	if topics == nil {
		var err error
		topics, err = c.insp.Topics(ctx)
		if err != nil {
			c.fail(fmt.Errorf("conveyor: list topics: %w", err))
			return err
		}
	}
	next := &queueSnapshot{topics: make(map[string]*[numGauges]float64, len(topics)), refreshed: old.refreshed}
	pi, _ := c.insp.(broker.PartitionInspector)
	if c.partitions && pi != nil {
		next.parts = make(map[string][]broker.PartitionInfo, len(topics))
	}
	var errs []error
	for _, topic := range topics {
		info, err := c.insp.Inspect(ctx, topic)
		if errors.Is(err, broker.ErrNotFound) {
			// A topic the broker has never seen (the memory broker says
			// so) holds no jobs: it is empty, not a failure.
			info, err = &broker.TopicInfo{Topic: topic}, nil
		}
		if err != nil {
			err = fmt.Errorf("conveyor: inspect topic %q: %w", topic, err)
			c.fail(err)
			errs = append(errs, err)
			if vs, ok := old.topics[topic]; ok {
				next.topics[topic] = vs
			}
			continue
		}
		next.topics[topic] = values(info)
		if next.parts == nil {
			continue
		}
		ps, err := pi.InspectPartitions(ctx, topic)
		if err != nil && !errors.Is(err, broker.ErrNotFound) {
			err = fmt.Errorf("conveyor: inspect partitions of topic %q: %w", topic, err)
			c.fail(err)
			errs = append(errs, err)
			ps = old.parts[topic]
		}
		if len(ps) > 0 {
			next.parts[topic] = ps
		}
	}
	if len(errs) == 0 {
		next.refreshed = float64(c.now().UnixNano()) / 1e9
	}
	c.snap.Store(next)
	return errors.Join(errs...)
}

// fail counts and logs a failed broker call.
func (c *QueueCollector) fail(err error) {
	c.errors.Add(1)
	if c.logger != nil {
		c.logger.Warn("conveyor: queue metrics refresh failed", "error", err)
	}
}

// values extracts the gauges of info.
func values(info *broker.TopicInfo) *[numGauges]float64 {
	var vs [numGauges]float64
	vs[gaugeLength] = float64(info.Length)
	vs[gaugePending] = float64(info.Pending)
	vs[gaugeLag] = float64(info.Lag)
	vs[gaugeDelayed] = float64(info.Delayed)
	vs[gaugeDeadLetters] = float64(info.DeadLetters)
	consumers := 0
	for _, g := range info.Groups {
		consumers += len(g.Consumers)
	}
	vs[gaugeConsumers] = float64(consumers)
	if info.Paused {
		vs[gaugePaused] = 1
	}
	return &vs
}

// Run refreshes at once and then every Interval until ctx ends; it returns
// nil then. Refresh errors are counted and logged, not returned. It returns
// [ErrCollectorRunning] at once if c is already running.
func (c *QueueCollector) Run(ctx context.Context) error {
	c.runMu.Lock()
	if c.running {
		c.runMu.Unlock()
		return ErrCollectorRunning
	}
	c.running = true
	c.runMu.Unlock()
	defer func() {
		c.runMu.Lock()
		c.running = false
		c.runMu.Unlock()
	}()

	t := time.NewTicker(c.interval)
	defer t.Stop()
	for {
		_ = c.Refresh(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Start runs c in a goroutine of its own until [QueueCollector.Stop]. It
// does nothing if c was already started and not stopped.
func (c *QueueCollector) Start() {
	c.runMu.Lock()
	defer c.runMu.Unlock()
	if c.done != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	c.cancel, c.done = cancel, done
	go func() {
		defer close(done)
		_ = c.Run(ctx)
	}()
}

// Stop stops the goroutine Start started and waits for it to return. It
// does nothing if c was not started.
func (c *QueueCollector) Stop() {
	c.runMu.Lock()
	cancel, done := c.cancel, c.done
	c.cancel, c.done = nil, nil
	c.runMu.Unlock()
	if done == nil {
		return
	}
	cancel()
	<-done
}
