package reliability

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/redis/redistest"
	"github.com/conveyor-jobs/conveyor/workflow"
)

// TestFaultBatchWorkerSIGKILL runs a batch over two worker processes, with
// transient failures (each fails once, then succeeds) and permanent ones,
// and kills one worker with SIGKILL half way: the callback runs exactly
// once, with counts equal to the ledger, and the batch holds the result of
// every member that succeeded. It runs 3 times (CONVEYOR_BATCH_KILL_RUNS)
// with 300 members (CONVEYOR_BATCH_KILL_MEMBERS).
func TestFaultBatchWorkerSIGKILL(t *testing.T) {
	n, runs := 300, 3
	if v, err := strconv.Atoi(os.Getenv("CONVEYOR_BATCH_KILL_MEMBERS")); err == nil && v > 0 {
		n = v
	}
	if v, err := strconv.Atoi(os.Getenv("CONVEYOR_BATCH_KILL_RUNS")); err == nil && v > 0 {
		runs = v
	}
	for run := range runs {
		t.Run(fmt.Sprint(run+1), func(t *testing.T) { batchWorkerSIGKILL(t, n, uint64(run)) })
	}
}

func batchWorkerSIGKILL(t *testing.T, n int, seed uint64) {
	rs := redistest.Start(t)
	const topic = "sigbatch"
	logger, _ := testLogger(t)
	prod := openBroker(t, rs.URL(), rs.Namespace, "producer", logger, nil)
	wf, err := workflow.New(prod)
	if err != nil {
		t.Fatal(err)
	}

	rng := rand.New(rand.NewPCG(seed, uint64(n)))
	members := make([]broker.Message, n)
	permanent := 0
	for i := range members {
		payload := "ok"
		switch r := rng.IntN(100); {
		case r == 0:
			payload = "permanent"
			permanent++
		case r < 11:
			payload = "transient"
		}
		members[i] = broker.Message{Topic: topic, ID: fmt.Sprintf("m%04d", i), Payload: []byte(payload)}
	}
	ctx := context.Background()
	batch, err := wf.OpenBatch(ctx, workflow.Batch{ID: "kill", Members: members, Callback: &broker.Message{Topic: topic + "-callback"}})
	if err != nil {
		t.Fatal(err)
	}

	rep := reportPath(t)
	cfg := workerConfig{
		URL: rs.URL(), Namespace: rs.Namespace, Topic: topic, Lease: testLease, MaxDeliveries: 5,
		Concurrency: 8, ShutdownTimeout: 5 * time.Second, Log: rep, Behavior: behaveBatch, Work: 100 * time.Millisecond,
	}
	a, b := cfg, cfg
	a.Consumer, b.Consumer = "victim", "survivor"
	victim := startWorker(t, a)
	survivor := startWorker(t, b)
	waitFor(t, 60*time.Second, "half the members to succeed", func() bool {
		return len(readReport(t, rep).Done) >= n/2
	})
	victim.Signal(syscall.SIGKILL)
	if err := victim.Wait(10 * time.Second); !isSignaled(err) {
		t.Fatalf("victim exit: %v, want killed by a signal", err)
	}
	atKill := readReport(t, rep)
	held := map[string]bool{}
	for _, e := range atKill.Events {
		if e.Kind == "start" && e.Pid == victim.Pid() && atKill.Done[e.ID] == 0 {
			held[e.ID] = true
		}
	}
	t.Logf("victim (pid %d) killed after %d of %d members succeeded, holding %d", victim.Pid(), len(atKill.Done), n, len(held))

	var info *broker.BatchInfo
	waitFor(t, settleWait, "the callback to run and be acknowledged", func() bool {
		info, err = wf.BatchInfo(ctx, batch)
		return err == nil && info.State == broker.BatchComplete && info.CallbackState == broker.CallbackSucceeded
	})
	// A crash-interrupted callback would be re-published by a sweep: run
	// one now, then nothing of the callback topic may be left to run.
	if _, err := prod.SweepBatches(ctx); err != nil {
		t.Fatal(err)
	}
	if in, err := prod.Inspect(ctx, topic+"-callback"); err != nil || in.Length != 0 || in.Delayed != 0 {
		t.Fatalf("callback topic after the sweep: %+v, %v", in, err)
	}

	final := readReport(t, rep)
	want := fmt.Sprintf("%s %d %d %d", batch, n-permanent, permanent, n)
	if len(final.Callbacks) != 1 || final.Callbacks[0] != want {
		t.Fatalf("callbacks %q, want exactly one %q", final.Callbacks, want)
	}
	if info.Succeeded != n-permanent || info.Dead != permanent || info.Total != n {
		t.Errorf("batch counts %+v, want %d succeeded, %d dead of %d", info, n-permanent, permanent, n)
	}
	results := 0
	for _, m := range info.Members {
		if m.State == broker.MemberSucceeded {
			if string(m.Result) != strconv.Quote(m.ID) {
				t.Errorf("member %s: result %q", m.ID, m.Result)
			}
			results++
		}
	}
	for id := range held {
		if final.Done[id] == 0 && !slices.ContainsFunc(members, func(m broker.Message) bool { return m.ID == id && string(m.Payload) == "permanent" }) {
			t.Errorf("member %s, held by the killed worker, never succeeded", id)
		}
	}
	// The ledger: every member that succeeded ran to its end at least once.
	for _, m := range members {
		if string(m.Payload) != "permanent" && final.Done[m.ID] == 0 {
			t.Errorf("member %s never succeeded", m.ID)
		}
	}
	t.Logf("callback %q; %d results; %d permanent failures; %d members ran more than once", final.Callbacks[0], results, permanent, countAbove(final.Done, 1))
	survivor.Signal(syscall.SIGTERM)
	if err := survivor.Wait(30 * time.Second); err != nil {
		t.Errorf("survivor exit after SIGTERM: %v", err)
	}
}

// countAbove counts the values of m above n.
func countAbove(m map[string]int, n int) int {
	c := 0
	for _, v := range m {
		if v > n {
			c++
		}
	}
	return c
}
