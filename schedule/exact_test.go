package schedule_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/memory"
	"github.com/conveyor-jobs/conveyor/broker/redis"
	"github.com/conveyor-jobs/conveyor/internal/redistest"
	"github.com/conveyor-jobs/conveyor/schedule"
)

// brokers are the stores the scheduler is tested on. Each returns a
// function making brokers (one per scheduler, as separate processes would
// have) that share one fresh queue space; clock is the brokers' clock.
var brokers = []struct {
	name string
	open func(t *testing.T, clock func() time.Time) func() broker.Broker
}{
	{"memory", func(t *testing.T, clock func() time.Time) func() broker.Broker {
		root := memory.New(&memory.Options{Now: clock, FetchWait: -1})
		t.Cleanup(func() { _ = root.Close() })
		n := 0
		return func() broker.Broker { n++; return root.Consumer(fmt.Sprint("c", n)) }
	}},
	{"redis", func(t *testing.T, clock func() time.Time) func() broker.Broker {
		srv := redistest.Start(t)
		return redisBrokers(t, func() goredis.UniversalClient { return srv.Client(t) }, srv.Namespace, clock)
	}},
	{"cluster", func(t *testing.T, clock func() time.Time) func() broker.Broker {
		c := redistest.StartCluster(t, 3)
		return redisBrokers(t, func() goredis.UniversalClient { return c.Client(t) }, c.Namespace, clock)
	}},
}

// redisBrokers returns a function making brokers on namespace ns, each
// with its own client (connections), as separate processes would have.
func redisBrokers(t *testing.T, client func() goredis.UniversalClient, ns string, clock func() time.Time) func() broker.Broker {
	n := 0
	return func() broker.Broker {
		n++
		b, err := redis.New(client(), &redis.Options{Namespace: ns, Consumer: fmt.Sprint("c", n), Block: 50 * time.Millisecond, Now: clock})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		return b
	}
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// TestExactlyOnce runs 5 schedulers of one 1-second entry for 30 seconds
// of a fake clock, each with a broker of its own (on Redis, its own
// client and connections), and checks that no
// tick was enqueued twice and none was lost: with synchronous clocks; with
// one scheduler stopped half way, in the middle of a tick; and with the
// clocks skewed by up to ±700ms.
//
// The run starts at hh:mm:00.5 true time and a scheduler fires the ticks
// from its start on, so with no skew the jobs are exactly the 30 ticks :01
// to :30. With skew, the window widens by 0.7s at each edge. At the end,
// the scheduler ahead by 0.7s reaches :31 and fires it (31 or 32 jobs).
// At the start, :00 is reached only by the scheduler behind by 0.7s, at
// true :00.7, when the scheduler ahead by 0.35s is firing :01; the claim
// refuses a tick older than the entry's last fired tick (an entry's jobs are
// enqueued in tick order), so :00 is enqueued or not depending on which
// claim Redis runs first. The check is therefore: the ticks enqueued are
// whole seconds, each once, with no gap, from the first tick that a
// scheduler reached to the last; the last is the last tick any scheduler's
// clock reached, and the first is at most the first tick that every
// scheduler's clock reached after its start.
func TestExactlyOnce(t *testing.T) {
	skewed := []time.Duration{-700 * time.Millisecond, -350 * time.Millisecond, 0, 350 * time.Millisecond, 700 * time.Millisecond}
	scenarios := []struct {
		name  string
		skews []time.Duration
		kill  bool
		min   int
		max   int
	}{
		{"in step", make([]time.Duration, 5), false, 30, 30},
		{"one stopped half way", make([]time.Duration, 5), true, 30, 30},
		{"skewed", skewed, false, 31, 32},
		{"skewed, one stopped half way", skewed, true, 31, 32},
	}
	for _, bk := range brokers {
		t.Run(bk.name, func(t *testing.T) {
			for _, sc := range scenarios {
				t.Run(sc.name, func(t *testing.T) {
					res := runSchedulers(t, bk.open, sc.skews, sc.kill)
					t.Logf("%s, %s: %d jobs, %d duplicates, ticks %s to %s", bk.name, sc.name, res.jobs, res.dups, res.first.Format("05.000"), res.last.Format("05.000"))
					if res.jobs < sc.min || res.jobs > sc.max || res.dups != 0 {
						t.Errorf("%d jobs with %d duplicates, want %d to %d jobs, none twice", res.jobs, res.dups, sc.min, sc.max)
					}
				})
			}
		})
	}
}

type result struct {
	jobs, dups  int
	first, last time.Time
}

// runSchedulers runs one scheduler per skew for 30s of true time from
// hh:mm:00.5, stopping the first at 15.5s, when the true
// clock has just reached hh:mm:16 and the schedulers are publishing that
// tick, when kill is set, and checks the
// enqueued jobs against the ticks the schedulers' clocks covered.
func runSchedulers(t *testing.T, open func(*testing.T, func() time.Time) func() broker.Broker, skews []time.Duration, kill bool) result {
	t.Helper()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 500*int(time.Millisecond), time.UTC)
	clk := newFakeClock(t0)
	newBroker := open(t, clk.view(-1, 0).Now)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	entry := schedule.Entry{Name: "every-second", Every: time.Second, Topic: "ticks", Payload: []byte("tick")}

	runCtx := make([]context.CancelFunc, len(skews))
	done := make([]chan error, len(skews))
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for i, skew := range skews {
		v := clk.view(i, skew)
		s, err := schedule.New(newBroker(), []schedule.Entry{entry}, &schedule.Options{Now: v.Now, After: v.After, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		c, stop := context.WithCancel(ctx)
		runCtx[i], done[i] = stop, make(chan error, 1)
		wg.Go(func() { done[i] <- s.Run(c) })
	}
	live := len(skews)
	const step = 100 * time.Millisecond
	for elapsed := time.Duration(0); elapsed < 30*time.Second; elapsed += step {
		clk.quiesce(t, ctx, live)
		clk.advance(step)
		if kill && elapsed+step == 15500*time.Millisecond {
			runCtx[0]()
			if err := <-done[0]; err != nil {
				t.Errorf("stopped scheduler: Run = %v", err)
			}
			clk.drop(0)
			live--
		}
	}
	clk.quiesce(t, ctx, live)
	for i := range skews {
		runCtx[i]()
	}

	// The ticks reached: from the earliest start clock (lo) to the latest
	// end clock (hi); every scheduler's clock had started by sure.
	lo, hi, sure := t0, t0.Add(30*time.Second), t0
	for _, s := range skews {
		lo, hi, sure = minTime(lo, t0.Add(s)), maxTime(hi, t0.Add(30*time.Second+s)), maxTime(sure, t0.Add(s))
	}
	b := newBroker()
	info, err := b.(broker.Inspector).Inspect(ctx, "ticks")
	if err != nil {
		t.Fatal(err)
	}
	var ds []*broker.Delivery
	for int64(len(ds)) < info.Length {
		got, err := b.Fetch(ctx, []string{"ticks"}, 100)
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, got...)
	}
	res := result{jobs: len(ds)}
	seen := map[string]bool{}
	for _, d := range ds {
		at, err := time.Parse(time.RFC3339, d.Job.Header(broker.HeaderScheduledAt))
		if err != nil {
			t.Fatalf("job %s: %v", d.Job.ID, err)
		}
		if d.Job.ID != schedule.JobID("every-second", at) || d.Job.Header(broker.HeaderSchedule) != "every-second" {
			t.Errorf("job %s: headers %v", d.Job.ID, d.Job.Headers)
		}
		if seen[d.Job.ID] {
			res.dups++
		}
		seen[d.Job.ID] = true
		if res.first.IsZero() || at.Before(res.first) {
			res.first = at
		}
		res.last = maxTime(res.last, at)
	}
	first, last := ceilSecond(lo), hi.Truncate(time.Second)
	if res.first.Before(first) || res.first.After(ceilSecond(sure)) || !res.last.Equal(last) {
		t.Errorf("ticks %s to %s enqueued, want from between %s and %s to %s", res.first.Format(time.TimeOnly), res.last.Format(time.TimeOnly),
			first.Format(time.TimeOnly), ceilSecond(sure).Format(time.TimeOnly), last.Format(time.TimeOnly))
	}
	for tick := res.first; !tick.After(res.last); tick = tick.Add(time.Second) {
		if !seen[schedule.JobID("every-second", tick)] {
			t.Errorf("tick %s was not enqueued", tick.Format(time.TimeOnly))
		}
	}
	if len(seen) != int(res.last.Sub(res.first)/time.Second)+1 {
		t.Errorf("%d distinct ticks enqueued, want the %d from %s to %s", len(seen), int(res.last.Sub(res.first)/time.Second)+1,
			res.first.Format(time.TimeOnly), res.last.Format(time.TimeOnly))
	}
	return res
}

// ceilSecond returns the first whole second at or after t.
func ceilSecond(t time.Time) time.Time {
	if u := t.Truncate(time.Second); !u.Equal(t) {
		return u.Add(time.Second)
	}
	return t
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
