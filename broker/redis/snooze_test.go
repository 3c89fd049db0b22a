package redis_test

import (
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/redis"
	"github.com/conveyor-jobs/conveyor/job"
)

// TestSnoozeBecauseRecorded checks that SnoozeBecause records the cause and
// time of the snooze with the delayed job, keeping its attempt and last
// failure, and that the job's next settle drops the record.
func TestSnoozeBecauseRecorded(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	clk := newClock()
	b := e.broker(t, "w", func(o *redis.Options) { o.Now = clk.Now })
	if _, err := b.Publish(ctx, broker.Message{Topic: "t", ID: "j1", Payload: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	d := fetchN(t, b, []string{"t"}, 1)[0]
	failure := job.Failure{Error: "upstream 503", Reason: job.ReasonError, Origin: "t", At: clk.Now().Add(-time.Second).Truncate(time.Millisecond)}
	if err := b.Retry(ctx, d, 0, failure); err != nil {
		t.Fatal(err)
	}
	d = fetchN(t, b, []string{"t"}, 1)[0]
	if err := b.SnoozeBecause(ctx, d, time.Minute, "conveyor: circuit open"); err != nil {
		t.Fatal(err)
	}
	js, err := b.DelayedJobs(ctx, "t", 10)
	if err != nil || len(js) != 1 {
		t.Fatalf("DelayedJobs: %v, %v", js, err)
	}
	dj := js[0]
	if dj.Snooze == nil || dj.Snooze.Cause != "conveyor: circuit open" || !dj.Snooze.At.Equal(clk.Now().Truncate(time.Millisecond)) {
		t.Errorf("Snooze = %+v, want the cause and the time of the snooze", dj.Snooze)
	}
	if !dj.Due.Equal(clk.Now().Add(time.Minute).Truncate(time.Millisecond)) {
		t.Errorf("Due = %v, want a minute after the snooze", dj.Due)
	}
	if dj.Job.Attempt != 2 || dj.Job.Failure == nil || dj.Job.Failure.Error != "upstream 503" {
		t.Errorf("snoozed job = %+v, want attempt 2 and the last failure kept", dj.Job)
	}

	// Due: the job runs and is retried; the retry carries no snooze.
	clk.Advance(time.Minute)
	d = fetchN(t, b, []string{"t"}, 1)[0]
	if err := b.Retry(ctx, d, time.Hour, failure); err != nil {
		t.Fatal(err)
	}
	js, err = b.DelayedJobs(ctx, "t", 10)
	if err != nil || len(js) != 1 || js[0].Snooze != nil {
		t.Fatalf("after a retry: %+v, %v; want no snooze recorded", js, err)
	}
}
