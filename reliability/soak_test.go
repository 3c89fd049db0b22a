package reliability

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/redis"
	"github.com/conveyor-jobs/conveyor/broker/redis/redistest"
	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/retry"
	"github.com/conveyor-jobs/conveyor/server"
)

// envSoakN sets the number of jobs of TestFaultSoak.
const envSoakN = "CONVEYOR_SOAK_N"

// defaultSoakN is small enough for CI with -race on two cores.
const defaultSoakN = 20000

// TestFaultSoak pushes N jobs (CONVEYOR_SOAK_N, default 20,000) through four
// servers, each with its own broker and consumer name, sharing one consumer
// group, while a producer publishes. 10% of the jobs fail once and are
// retried; 1% fail permanently and are dead-lettered. At the end processed +
// dead-lettered = published, nothing is missing, the dead letters are
// exactly the permanent failures, and duplicates are reported. The process's
// RSS is logged at the start, the middle and the end.
//
// The full run (see docs/guarantees.md):
//
//	CONVEYOR_SOAK_N=1000000 go test -run TestFaultSoak -timeout 1h -v ./reliability/
func TestFaultSoak(t *testing.T) {
	n := defaultSoakN
	if s := os.Getenv(envSoakN); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			t.Fatalf("%s=%q: want a positive number", envSoakN, s)
		}
		n = v
	}
	const servers, topic = 4, "soak"
	t.Logf("soak: %d jobs, %d servers; RSS at start %s", n, servers, vmRSS())

	rs := redistest.Start(t)
	logger, _ := testLogger(t)
	lease := func(o *redis.Options) { o.Lease = 5 * time.Second }
	prod := openBroker(t, rs.URL(), rs.Namespace, "producer", logger, lease)

	all := ids("soak", n)
	permanent := func(i int) bool { return i%100 == 0 }
	failOnce := func(i int) bool { return i%10 == 1 }
	index := make(map[string]int, n)
	for i, id := range all {
		index[id] = i
	}

	l := newLedger()
	mux := job.NewMux()
	errTransient := errors.New("soak: transient failure")
	mux.Handle(topic, recordingHandler(l, func(_ context.Context, j *job.Job) error {
		i, ok := index[j.ID]
		switch {
		case !ok:
			return job.Permanent(fmt.Errorf("soak: unknown job %q", j.ID))
		case permanent(i):
			return job.Permanent(errors.New("soak: permanent failure"))
		case failOnce(i) && j.Attempt == 1:
			return errTransient
		}
		return nil
	}))
	var runners []*runner
	for s := range servers {
		b := openBroker(t, rs.URL(), rs.Namespace, fmt.Sprintf("soak-%d", s), logger, lease)
		runners = append(runners, runServer(t, b, mux, &server.Options{
			Concurrency: 32,
			Retry:       &retry.Policy{Schedule: []time.Duration{10 * time.Millisecond}, RandomizationFactor: retry.NoJitter},
			Logger:      logger,
		}))
	}

	start := time.Now()
	var (
		pub       sync.WaitGroup
		published time.Duration // set before pub is done
	)
	pubErr := make(chan error, 1)
	pub.Go(func() {
		defer close(pubErr)
		defer func() { published = time.Since(start) }()
		ctx := context.Background()
		const batch = 1000
		for lo := 0; lo < n; lo += batch {
			hi := min(lo+batch, n)
			ms := make([]broker.Message, 0, hi-lo)
			for _, id := range all[lo:hi] {
				ms = append(ms, broker.Message{Topic: topic, ID: id, Payload: []byte(`{"soak":true}`)})
			}
			if _, err := prod.PublishBatch(ctx, ms); err != nil {
				pubErr <- err
				return
			}
		}
	})
	waitFor(t, soakTimeout(n), "half the jobs processed", func() bool { return l.DoneCount() >= n/2 })
	t.Logf("soak: half processed after %v; RSS %s", time.Since(start).Round(time.Millisecond), vmRSS())
	pub.Wait()
	if err := <-pubErr; err != nil {
		t.Fatalf("publish: %v", err)
	}

	wantDone := 0
	for i := range all {
		if !permanent(i) {
			wantDone++
		}
	}
	// Wait cheaply first: the full tally copies the ledger under its lock
	// and would slow the handlers down while they still run.
	waitFor(t, soakTimeout(n), "the jobs that can succeed to succeed", func() bool { return l.DoneCount() >= wantDone })
	acc := waitAccounted(t, prod, topic, all, l.Done, soakTimeout(n))
	elapsed := time.Since(start)
	t.Logf("soak: %d jobs settled in %v (published in %v): %.0f jobs/s; RSS at end %s (the test's own ledger included)",
		n, elapsed.Round(time.Millisecond), published.Round(time.Millisecond), float64(n)/elapsed.Seconds(), vmRSS())

	var total server.Stats
	for i, r := range runners {
		st := r.srv.Stats()
		t.Logf("soak: server %d: processed %d, acked %d, retried %d, dead-lettered %d, settle errors %d, fetches %d",
			i, st.Processed, st.Acked, st.Retried, st.DeadLettered, st.SettleErrors, st.Fetches)
		total.Processed += st.Processed
		total.Retried += st.Retried
		total.SettleErrors += st.SettleErrors
	}

	wantDead := 0
	for i, id := range all {
		if !permanent(i) {
			continue
		}
		wantDead++
		dl, ok := acc.DeadByID[id]
		if !ok {
			t.Errorf("permanent failure %s not dead-lettered", id)
		} else if dl.Job.Failure == nil || dl.Job.Failure.Reason != job.ReasonPermanent {
			t.Errorf("dead letter %s: failure %+v, want reason %q", id, dl.Job.Failure, job.ReasonPermanent)
		}
	}
	if acc.Processed+acc.DeadLettered != n || acc.DeadLettered != wantDead || len(acc.Both) != 0 {
		t.Errorf("processed %d + dead-lettered %d != published %d (want %d dead letters, %d both)",
			acc.Processed, acc.DeadLettered, n, wantDead, len(acc.Both))
	}
	retriedJobs := 0
	for i, id := range all {
		if failOnce(i) && !permanent(i) {
			retriedJobs++
			if l.Deliveries(id) < 2 {
				t.Errorf("job %s that fails once was delivered %d times", id, l.Deliveries(id))
			}
		}
	}
	if total.Retried < int64(retriedJobs) {
		t.Errorf("servers retried %d jobs, want at least %d", total.Retried, retriedJobs)
	}
	if total.SettleErrors != 0 {
		t.Errorf("%d settle errors", total.SettleErrors)
	}
}

// soakTimeout is the failure deadline of a soak of n jobs: generous, since
// -race on a loaded two-core machine is slow.
func soakTimeout(n int) time.Duration {
	return time.Minute + time.Duration(n)*2*time.Millisecond
}
