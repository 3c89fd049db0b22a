package schedule_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/schedule"
)

// TestMissedTicks stops the only scheduler of a 1-second entry after it
// fired :01 and :02, lets 10 seconds pass, and starts another on a new
// broker connection: the missed ticks :03 to :12 follow the entry's
// policy, read from the last tick the broker kept, and :13 fires on time.
func TestMissedTicks(t *testing.T) {
	policies := []struct {
		name    string
		missed  schedule.Missed
		catchUp int
		want    []int // seconds of the ticks fired after the downtime
	}{
		{"skip", schedule.Skip, 0, []int{13}},
		{"run once", schedule.RunOnce, 0, []int{12, 13}},
		{"catch up 3", schedule.CatchUp, 3, []int{10, 11, 12, 13}},
		{"catch up 20", schedule.CatchUp, 20, []int{3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13}},
	}
	for _, bk := range brokers[:2] {
		t.Run(bk.name, func(t *testing.T) {
			for _, p := range policies {
				t.Run(p.name, func(t *testing.T) {
					t0 := time.Date(2026, 3, 1, 12, 0, 0, 500*int(time.Millisecond), time.UTC)
					clk := newFakeClock(t0)
					newBroker := bk.open(t, clk.view(-1, 0).Now)
					ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
					defer cancel()
					e := schedule.Entry{Name: "tick", Every: time.Second, Topic: "ticks", Missed: p.missed, CatchUp: p.catchUp}

					b := newBroker()
					stop := runScheduler(t, ctx, clk, 0, b, e)
					clk.advance(time.Second)
					clk.quiesce(t, ctx, 1)
					clk.advance(time.Second)
					clk.quiesce(t, ctx, 1)
					stop()
					if got := tickSeconds(t, ctx, b, "ticks"); !slices.Equal(got, []int{1, 2}) {
						t.Fatalf("before the downtime: ticks %v, want [1 2]", got)
					}

					clk.advance(10 * time.Second) // down until :12.5
					b = newBroker()
					stop = runScheduler(t, ctx, clk, 1, b, e)
					clk.advance(time.Second)
					clk.quiesce(t, ctx, 1)
					stop()
					if got := tickSeconds(t, ctx, b, "ticks"); !slices.Equal(got, p.want) {
						t.Errorf("after the downtime: ticks %v, want %v", got, p.want)
					}
					list, err := b.(broker.TickPublisher).Schedules(ctx)
					if err != nil {
						t.Fatal(err)
					}
					lastTick := time.Date(2026, 3, 1, 12, 0, 13, 0, time.UTC)
					if len(list) != 1 || !list[0].LastTick.Equal(lastTick) || list[0].LastJobID != schedule.JobID("tick", lastTick) ||
						list[0].Missed != p.missed.String() || list[0].Spec != "@every 1s" {
						t.Errorf("Schedules = %+v, want last tick %s", list, lastTick)
					}
				})
			}
		})
	}
}

// TestStall jumps a running scheduler's clock by 5.5 seconds, as a stalled
// process would see it: the newest due tick fires, the older ones are
// missed and follow the policy.
func TestStall(t *testing.T) {
	for _, p := range []struct {
		name    string
		missed  schedule.Missed
		catchUp int
		want    []int
	}{
		{"skip", schedule.Skip, 0, []int{1, 6}},
		{"run once", schedule.RunOnce, 0, []int{1, 6}},
		{"catch up 2", schedule.CatchUp, 2, []int{1, 4, 5, 6}},
	} {
		t.Run(p.name, func(t *testing.T) {
			t0 := time.Date(2026, 3, 1, 12, 0, 0, 500*int(time.Millisecond), time.UTC)
			clk := newFakeClock(t0)
			b := brokers[0].open(t, clk.view(-1, 0).Now)()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			stop := runScheduler(t, ctx, clk, 0, b, schedule.Entry{Name: "tick", Every: time.Second, Topic: "ticks", Missed: p.missed, CatchUp: p.catchUp})
			clk.advance(time.Second)
			clk.quiesce(t, ctx, 1)
			clk.advance(5 * time.Second)
			clk.quiesce(t, ctx, 1)
			stop()
			if got := tickSeconds(t, ctx, b, "ticks"); !slices.Equal(got, p.want) {
				t.Errorf("ticks %v, want %v", got, p.want)
			}
		})
	}
}

// runScheduler starts a scheduler of e on b with the clock's view owner,
// waits until it waits for its next tick, and returns the function that
// stops it and joins it.
func runScheduler(t *testing.T, ctx context.Context, clk *fakeClock, owner int, b broker.Broker, e schedule.Entry) (stop func()) {
	t.Helper()
	v := clk.view(owner, 0)
	s, err := schedule.New(b, []schedule.Entry{e}, &schedule.Options{Now: v.Now, After: v.After, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	c, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(c) }()
	clk.quiesce(t, ctx, 1)
	return func() {
		t.Helper()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
		clk.drop(owner)
	}
}

// tickSeconds fetches and acknowledges every job of topic and returns the
// seconds of their ticks, in order.
func tickSeconds(t *testing.T, ctx context.Context, b broker.Broker, topic string) []int {
	t.Helper()
	info, err := b.(broker.Inspector).Inspect(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for int64(len(out)) < info.Length {
		ds, err := b.Fetch(ctx, []string{topic}, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			at, err := time.Parse(time.RFC3339, d.Job.Header(broker.HeaderScheduledAt))
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, at.Second())
		}
		if err := b.Ack(ctx, ds...); err != nil {
			t.Fatal(err)
		}
	}
	return out
}
