package reliability

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker/redis/redistest"
	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/retry"
	"github.com/conveyor-jobs/conveyor/server"
)

// TestFaultLostSettleReply loses the reply of a retry's settle script: Redis
// runs it, the worker's connection breaks before the reply arrives, and
// go-redis sends the script again on a new connection. The second run finds
// the settle done by the first: the server counts a retry and no settle
// error, logs no "outcome was not recorded", and the job runs twice (its
// failed attempt and its retry), not three times.
func TestFaultLostSettleReply(t *testing.T) {
	rs := redistest.Start(t)
	p := startProxy(t, rs.Addr())
	const topic, marker = "lostreply", "first attempt fails: lost-reply-marker"
	logger, logs := testLogger(t)
	b := openBroker(t, p.URL(), rs.Namespace, "worker", logger, nil)
	l := newLedger()
	mux := job.NewMux()
	mux.Handle(topic, recordingHandler(l, func(_ context.Context, j *job.Job) error {
		switch {
		case j.Attempt > 1:
			return nil
		case j.ID == "warm-up":
			return errors.New("warm-up failure")
		}
		return errors.New(marker)
	}))
	r := runServer(t, b, mux, &server.Options{Concurrency: 1, Retry: &retry.Policy{Schedule: []time.Duration{time.Millisecond}, RandomizationFactor: retry.NoJitter}, Logger: logger})
	// A first retry loads the settle script into Redis, so that the reply
	// lost below is that of a run of the script, not a NOSCRIPT error.
	publishAll(t, b, topic, []string{"warm-up"}, func(string) []byte { return []byte(`{}`) })
	waitAccounted(t, b, topic, []string{"warm-up"}, l.Done, settleWait)
	// The settle of the retry carries the failure's text: only its reply
	// is lost.
	p.DropReplyOnce(marker)
	publishAll(t, b, topic, []string{"job"}, func(string) []byte { return []byte(`{}`) })
	acc := waitAccounted(t, b, topic, []string{"warm-up", "job"}, l.Done, settleWait)
	requireNoDuplicates(t, acc, "a lost settle reply")
	if p.Dropped() != 1 {
		t.Fatalf("the proxy lost %d replies, want 1: the fault was not injected", p.Dropped())
	}
	st := r.srv.Stats()
	if st.SettleErrors != 0 || st.Retried != 2 {
		t.Errorf("stats %+v: want 2 retries and no settle error (the retry was recorded)", st)
	}
	if logs.Contains("was not recorded") || logs.Contains("no longer pending") {
		t.Errorf("a recorded settle was reported as lost:\n%s", tailLines(logs.String(), 20))
	}
	if got := l.Deliveries("job"); got != 2 {
		t.Errorf("the job ran %d times, want 2 (its failed attempt and its retry)", got)
	}
}
