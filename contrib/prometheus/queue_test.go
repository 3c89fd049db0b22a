package prometheus_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/memory"
	conveyorprom "github.com/conveyor-jobs/conveyor/contrib/prometheus"
)

var refreshedAt = time.Unix(1_700_000_000, 500_000_000)

// newQueueCollector returns a collector of b registered with a fresh
// registry, with a fixed clock.
func newQueueCollector(t testing.TB, b broker.Inspector, opts *conveyorprom.QueueCollectorOptions) (*conveyorprom.QueueCollector, *prometheus.Registry) {
	t.Helper()
	if opts == nil {
		opts = &conveyorprom.QueueCollectorOptions{}
	}
	if opts.Now == nil {
		opts.Now = func() time.Time { return refreshedAt }
	}
	c := conveyorprom.NewQueueCollector(b, opts)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	return c, reg
}

// twoTopics returns a fake broker holding two described topics.
func twoTopics() *fakeBroker {
	b := newFakeBroker()
	b.set(broker.TopicInfo{
		Topic: "orchestrate", Length: 12, Pending: 3, Lag: 9, Delayed: 4, DeadLetters: 2,
		Groups: []broker.GroupInfo{{Name: "workers", Consumers: []broker.ConsumerInfo{{Name: "w1"}, {Name: "w2"}}}},
		Paused: true,
	})
	b.set(broker.TopicInfo{Topic: "emails", Length: 1, Lag: 1})
	return b
}

const queueHelp = `
# HELP conveyor_queue_consumers Consumers known to the topic's consumer groups.
# TYPE conveyor_queue_consumers gauge
# HELP conveyor_queue_dead_letters Jobs in the topic's dead-letter topic.
# TYPE conveyor_queue_dead_letters gauge
# HELP conveyor_queue_delayed Jobs waiting for their due time.
# TYPE conveyor_queue_delayed gauge
# HELP conveyor_queue_lag Jobs not yet delivered to the consumer group (the largest over groups).
# TYPE conveyor_queue_lag gauge
# HELP conveyor_queue_last_refresh_timestamp_seconds Unix time of the end of the last refresh of the queue gauges that succeeded for every topic (0 before the first).
# TYPE conveyor_queue_last_refresh_timestamp_seconds gauge
# HELP conveyor_queue_length Jobs in the topic's stream: unread plus pending.
# TYPE conveyor_queue_length gauge
# HELP conveyor_queue_pending Jobs delivered and not yet settled, over all consumer groups.
# TYPE conveyor_queue_pending gauge
# HELP conveyor_queue_refresh_errors_total Broker calls that failed while refreshing the queue gauges.
# TYPE conveyor_queue_refresh_errors_total counter
# HELP conveyor_topic_paused 1 while the topic is paused (no worker fetches its jobs), else 0.
# TYPE conveyor_topic_paused gauge
`

func TestQueueCollectorExposition(t *testing.T) {
	b := twoTopics()
	c, reg := newQueueCollector(t, b, nil)
	if err := c.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	const want = queueHelp + `
conveyor_queue_consumers{topic="emails"} 0
conveyor_queue_consumers{topic="orchestrate"} 2
conveyor_queue_dead_letters{topic="emails"} 0
conveyor_queue_dead_letters{topic="orchestrate"} 2
conveyor_queue_delayed{topic="emails"} 0
conveyor_queue_delayed{topic="orchestrate"} 4
conveyor_queue_lag{topic="emails"} 1
conveyor_queue_lag{topic="orchestrate"} 9
conveyor_queue_last_refresh_timestamp_seconds 1.7000000005e+09
conveyor_queue_length{topic="emails"} 1
conveyor_queue_length{topic="orchestrate"} 12
conveyor_queue_pending{topic="emails"} 0
conveyor_queue_pending{topic="orchestrate"} 3
conveyor_queue_refresh_errors_total 0
conveyor_topic_paused{topic="emails"} 0
conveyor_topic_paused{topic="orchestrate"} 1
`
	gatherAndCompare(t, reg, want)
}

func TestQueueCollectorBeforeFirstRefresh(t *testing.T) {
	b := twoTopics()
	_, reg := newQueueCollector(t, b, nil)
	const want = queueHelp + `
conveyor_queue_last_refresh_timestamp_seconds 0
conveyor_queue_refresh_errors_total 0
`
	gatherAndCompare(t, reg, want)
	if n := b.callCount(); n != 0 {
		t.Errorf("broker calls before any refresh = %d, want 0", n)
	}
}

func TestQueueCollectorScrapeMakesNoBrokerCalls(t *testing.T) {
	b := twoTopics()
	c, reg := newQueueCollector(t, b, nil)
	if err := c.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	// One Topics call and one Inspect per topic.
	if n := b.callCount(); n != 3 {
		t.Fatalf("broker calls by Refresh = %d, want 3", n)
	}
	for range 100 {
		if _, err := reg.Gather(); err != nil {
			t.Fatal(err)
		}
	}
	if n := testutil.CollectAndCount(c); n != 16 {
		t.Errorf("series = %d, want 16", n)
	}
	if n := b.callCount(); n != 3 {
		t.Errorf("broker calls after 101 scrapes = %d, want still 3", n)
	}
}

func TestQueueCollectorRefreshErrors(t *testing.T) {
	errDown := errors.New("store down")
	tests := []struct {
		name string
		// break the broker after the first refresh
		breakIt func(b *fakeBroker)
		wantErr bool
		want    string
	}{
		{
			name:    "listing topics fails: everything is kept",
			breakIt: func(b *fakeBroker) { b.failWith("", errDown); b.set(broker.TopicInfo{Topic: "emails", Length: 50}) },
			wantErr: true,
			want: `
conveyor_queue_length{topic="emails"} 1
conveyor_queue_length{topic="orchestrate"} 12
conveyor_queue_last_refresh_timestamp_seconds 1.7000000005e+09
conveyor_queue_refresh_errors_total 1
`,
		},
		{
			name: "inspecting one topic fails: its last values are kept, others refreshed",
			breakIt: func(b *fakeBroker) {
				b.failWith("orchestrate", errDown)
				b.set(broker.TopicInfo{Topic: "emails", Length: 50})
			},
			wantErr: true,
			want: `
conveyor_queue_length{topic="emails"} 50
conveyor_queue_length{topic="orchestrate"} 12
conveyor_queue_last_refresh_timestamp_seconds 1.7000000005e+09
conveyor_queue_refresh_errors_total 1
`,
		},
		{
			name:    "a topic no longer listed is dropped",
			breakIt: func(b *fakeBroker) { b.remove("orchestrate") },
			want: `
conveyor_queue_length{topic="emails"} 1
conveyor_queue_last_refresh_timestamp_seconds 1.7000000006e+09
conveyor_queue_refresh_errors_total 0
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := twoTopics()
			now := refreshedAt
			c, reg := newQueueCollector(t, b, &conveyorprom.QueueCollectorOptions{
				Now: func() time.Time { return now },
			})
			if err := c.Refresh(context.Background()); err != nil {
				t.Fatal(err)
			}
			tt.breakIt(b)
			now = now.Add(100 * time.Millisecond) // a successful refresh shows it
			err := c.Refresh(context.Background())
			if (err != nil) != tt.wantErr || (tt.wantErr && !errors.Is(err, errDown)) {
				t.Errorf("Refresh = %v, want error %v", err, tt.wantErr)
			}
			want := `
# HELP conveyor_queue_length Jobs in the topic's stream: unread plus pending.
# TYPE conveyor_queue_length gauge
# HELP conveyor_queue_last_refresh_timestamp_seconds Unix time of the end of the last refresh of the queue gauges that succeeded for every topic (0 before the first).
# TYPE conveyor_queue_last_refresh_timestamp_seconds gauge
# HELP conveyor_queue_refresh_errors_total Broker calls that failed while refreshing the queue gauges.
# TYPE conveyor_queue_refresh_errors_total counter
# HELP conveyor_topic_paused 1 while the topic is paused (no worker fetches its jobs), else 0.
# TYPE conveyor_topic_paused gauge
` + tt.want
			gatherAndCompare(t, reg, want, "conveyor_queue_length",
				"conveyor_queue_last_refresh_timestamp_seconds", "conveyor_queue_refresh_errors_total")
		})
	}
}

func TestQueueCollectorExplicitTopics(t *testing.T) {
	b := twoTopics()
	c, reg := newQueueCollector(t, b, &conveyorprom.QueueCollectorOptions{Topics: []string{"orchestrate"}})
	if err := c.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := b.callCount(); n != 1 {
		t.Errorf("broker calls = %d, want 1 (one Inspect, no Topics)", n)
	}
	const want = `
# HELP conveyor_queue_length Jobs in the topic's stream: unread plus pending.
# TYPE conveyor_queue_length gauge
conveyor_queue_length{topic="orchestrate"} 12
`
	gatherAndCompare(t, reg, want, "conveyor_queue_length")
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestQueueCollectorStartStop(t *testing.T) {
	b := twoTopics()
	c, _ := newQueueCollector(t, b, &conveyorprom.QueueCollectorOptions{Interval: 5 * time.Millisecond})
	c.Start()
	c.Start() // no second goroutine
	// Three calls per refresh: wait for several refreshes.
	waitFor(t, "repeated refreshes", func() bool { return b.callCount() >= 9 })
	if err := c.Run(context.Background()); !errors.Is(err, conveyorprom.ErrCollectorRunning) {
		t.Errorf("Run while started = %v, want ErrCollectorRunning", err)
	}
	c.Stop()
	n := b.callCount()
	c.Stop() // idempotent
	// Stop joined the goroutine: no refresh can happen any more. goleak in
	// TestMain checks that no goroutine is left.
	if got := b.callCount(); got != n {
		t.Errorf("broker calls after Stop went from %d to %d", n, got)
	}
	// It can be started again.
	c.Start()
	waitFor(t, "a refresh after restart", func() bool { return b.callCount() > n })
	c.Stop()
}

func TestQueueCollectorRun(t *testing.T) {
	b := twoTopics()
	c, reg := newQueueCollector(t, b, &conveyorprom.QueueCollectorOptions{Interval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	// Run refreshes at once, without waiting for the first interval.
	waitFor(t, "the first refresh", func() bool {
		return testutil.CollectAndCount(c, "conveyor_queue_length") == 2
	})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v, want nil after ctx ends", err)
	}
	const want = `
# HELP conveyor_queue_pending Jobs delivered and not yet settled, over all consumer groups.
# TYPE conveyor_queue_pending gauge
conveyor_queue_pending{topic="emails"} 0
conveyor_queue_pending{topic="orchestrate"} 3
`
	gatherAndCompare(t, reg, want, "conveyor_queue_pending")
}

func TestQueueCollectorEmptyTopicList(t *testing.T) {
	b := twoTopics()
	c, _ := newQueueCollector(t, b, &conveyorprom.QueueCollectorOptions{Topics: []string{}})
	if err := c.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := b.callCount(); n != 0 {
		t.Errorf("broker calls = %d, want 0: an empty list is no topics, not all", n)
	}
	if n := testutil.CollectAndCount(c, "conveyor_queue_length"); n != 0 {
		t.Errorf("length series = %d, want 0", n)
	}
}

func TestQueueCollectorRefreshTimeout(t *testing.T) {
	b := twoTopics()
	b.block = true
	c, reg := newQueueCollector(t, b, &conveyorprom.QueueCollectorOptions{Timeout: 20 * time.Millisecond})
	err := c.Refresh(context.Background())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Refresh of a hung broker = %v, want DeadlineExceeded", err)
	}
	const want = `
# HELP conveyor_queue_refresh_errors_total Broker calls that failed while refreshing the queue gauges.
# TYPE conveyor_queue_refresh_errors_total counter
conveyor_queue_refresh_errors_total 2
`
	gatherAndCompare(t, reg, want, "conveyor_queue_refresh_errors_total")
}

func TestQueueCollectorStopInterruptsRefresh(t *testing.T) {
	b := twoTopics()
	b.block = true
	c, _ := newQueueCollector(t, b, &conveyorprom.QueueCollectorOptions{Interval: time.Hour})
	c.Start()
	waitFor(t, "a refresh to start", func() bool { return b.callCount() >= 2 }) // Topics, then a hung Inspect
	// With a one-hour timeout, only Stop's cancellation can end the refresh.
	c.Stop()
}

// TestQueueCollectorUnseenTopicIsEmpty: a configured topic the broker has
// never seen (the memory broker reports it as not found) is an empty queue,
// not a refresh failure.
func TestQueueCollectorUnseenTopicIsEmpty(t *testing.T) {
	b := memory.New(nil)
	defer b.Close()
	c, reg := newQueueCollector(t, b, &conveyorprom.QueueCollectorOptions{Topics: []string{"orchestrate"}})
	if err := c.Refresh(context.Background()); err != nil {
		t.Fatalf("Refresh with a topic that has no jobs yet: %v", err)
	}
	const want = `
# HELP conveyor_queue_length Jobs in the topic's stream: unread plus pending.
# TYPE conveyor_queue_length gauge
conveyor_queue_length{topic="orchestrate"} 0
`
	gatherAndCompare(t, reg, want, "conveyor_queue_length")
}
