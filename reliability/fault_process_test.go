package reliability

import (
	"context"
	"fmt"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker/redis/redistest"
	"github.com/conveyor-jobs/conveyor/job"
)

// TestFaultWorkerSIGKILL kills a real worker process with SIGKILL while its
// handlers hold jobs. A second worker recovers them after the lease, each as
// a new attempt, and every job is processed.
func TestFaultWorkerSIGKILL(t *testing.T) {
	rs := redistest.Start(t)
	const topic, n, held = "sigkill", 200, 20
	logger, _ := testLogger(t)
	prod := openBroker(t, rs.URL(), rs.Namespace, "producer", logger, nil)
	all := ids("k", n)
	publishAll(t, prod, topic, all, func(string) []byte { return []byte(`{}`) })

	rep := reportPath(t)
	cfg := workerConfig{
		URL: rs.URL(), Namespace: rs.Namespace, Topic: topic, Lease: testLease,
		Concurrency: held, ShutdownTimeout: 5 * time.Second, Log: rep,
	}
	a := cfg
	a.Consumer, a.Behavior = "victim", behaveBlock
	victim := startWorker(t, a)
	waitFor(t, 30*time.Second, fmt.Sprintf("the victim to hold %d jobs", held), func() bool {
		return len(readReport(t, rep).Starts) >= held
	})
	victim.Signal(syscall.SIGKILL)
	if err := victim.Wait(10 * time.Second); !isSignaled(err) {
		t.Fatalf("victim exit: %v, want killed by a signal", err)
	}
	heldIDs := map[string]bool{}
	for _, e := range readReport(t, rep).Events {
		if e.Kind == "start" && e.Pid == victim.Pid() {
			heldIDs[e.ID] = true
		}
	}
	t.Logf("victim (pid %d) held %d jobs when killed", victim.Pid(), len(heldIDs))

	b := cfg
	b.Consumer, b.Behavior, b.Work = "rescuer", behaveWork, 2*time.Millisecond
	rescuer := startWorker(t, b)
	acc := waitAccounted(t, prod, topic, all, func() map[string]int { return readReport(t, rep).Done }, settleWait)
	if acc.Processed != n || acc.DeadLettered != 0 {
		t.Errorf("processed %d and dead-lettered %d of %d, want all processed", acc.Processed, acc.DeadLettered, n)
	}
	// The jobs the victim held came back as their second attempt: a
	// redelivery after a lost lease counts as an attempt.
	final := readReport(t, rep)
	for _, e := range final.Events {
		if e.Kind == "start" && e.Pid == rescuer.Pid() && heldIDs[e.ID] && e.Attempt < 2 {
			t.Errorf("job %s, held by the killed worker, was redelivered as attempt %d, want >= 2", e.ID, e.Attempt)
		}
	}
	for id := range heldIDs {
		if final.Done[id] == 0 {
			t.Errorf("job %s held by the killed worker was never processed", id)
		}
	}
	rescuer.Signal(syscall.SIGTERM)
	if err := rescuer.Wait(30 * time.Second); err != nil {
		t.Errorf("rescuer exit after SIGTERM: %v", err)
	}
}

// TestFaultCrashLoop publishes one job whose handler kills the process every
// time it runs. A supervisor restarts the worker after each crash; after
// MaxDeliveries deliveries the job is dead-lettered with reason max-deliveries,
// and every other job of the topic is processed.
//
// The worker runs one job at a time, so no other job is running when the
// crashing one kills the process.
func TestFaultCrashLoop(t *testing.T) {
	rs := redistest.Start(t)
	const topic, n, maxDeliveries = "crashloop", 60, 3
	logger, _ := testLogger(t)
	prod := openBroker(t, rs.URL(), rs.Namespace, "producer", logger, nil)
	all := ids("c", n)
	poison := all[5]
	publishAll(t, prod, topic, all, func(id string) []byte {
		if id == poison {
			return []byte("crash")
		}
		return []byte(`{}`)
	})

	rep := reportPath(t)
	cfg := workerConfig{
		URL: rs.URL(), Namespace: rs.Namespace, Topic: topic, Lease: testLease, MaxDeliveries: maxDeliveries,
		Concurrency: 1, ShutdownTimeout: 5 * time.Second, Behavior: behaveCrash, Log: rep,
	}
	done := func() map[string]int { return readReport(t, rep).Done }
	settled := func() bool {
		a, err := tally(context.Background(), prod, topic, all, done())
		return err == nil && a.settled()
	}
	crashes := 0
	for gen := 0; ; gen++ {
		if gen > 3*maxDeliveries {
			t.Fatalf("still crashing after %d worker restarts", gen)
		}
		c := cfg
		c.Consumer = fmt.Sprintf("worker-%d", gen)
		w := startWorker(t, c)
		waitFor(t, settleWait, "the worker to crash or the topic to settle", func() bool {
			return w.Exited() || settled()
		})
		if !w.Exited() {
			w.Signal(syscall.SIGTERM)
			if err := w.Wait(30 * time.Second); err != nil {
				t.Errorf("last worker exit after SIGTERM: %v", err)
			}
			break
		}
		if err := w.Wait(time.Second); !isSignaled(err) {
			t.Fatalf("worker %d exit: %v, want killed by its own SIGKILL", gen, err)
		}
		crashes++
		t.Logf("supervisor: worker %d (pid %d) crashed; restarting", gen, w.Pid())
	}

	acc := waitAccounted(t, prod, topic, all, done, settleWait)
	final := readReport(t, rep)
	dl, ok := acc.DeadByID[poison]
	switch {
	case !ok:
		t.Fatalf("the crashing job %s was not dead-lettered", poison)
	case dl.Job.Failure == nil || dl.Job.Failure.Reason != job.ReasonMaxDeliveries:
		t.Errorf("dead letter of %s has failure %+v, want reason %q", poison, dl.Job.Failure, job.ReasonMaxDeliveries)
	}
	if got := final.Starts[poison]; got != maxDeliveries {
		t.Errorf("the crashing job ran %d times, want MaxDeliveries = %d", got, maxDeliveries)
	}
	if crashes != maxDeliveries {
		t.Errorf("%d crashes, want %d", crashes, maxDeliveries)
	}
	// Every other job ran to success at least once. A job that finished
	// just before a crash can lose its acknowledgement and come back with
	// the crashing job; the server sends the acks of such later attempts at
	// once rather than in a batch, so it is not redelivered again and again
	// until it reaches the delivery limit. Only the window between a
	// handler's return and its ack's round trip remains, so a job dead-
	// lettered alongside the crashing one is reported (at-least-once allows
	// it), never a lost job.
	for _, id := range all {
		if id == poison {
			continue
		}
		if final.Done[id] == 0 {
			dl := acc.DeadByID[id]
			t.Errorf("job %s never ran to success (dead letter: %+v)", id, dl.Job.Failure)
		}
	}
	if collateral := acc.DeadLettered - 1; collateral > 0 {
		t.Logf("%d job(s) besides the crashing one were dead-lettered with it after succeeding (their acks were still batched at each crash): %v",
			collateral, acc.Both)
		for _, e := range final.Events {
			if slices.Contains(acc.Both, e.ID) || e.ID == poison {
				if e.Kind == "start" {
					t.Logf("  pid %d: start %s, attempt %d", e.Pid, e.ID, e.Attempt)
				} else {
					t.Logf("  pid %d: done %s", e.Pid, e.ID)
				}
			}
		}
	}
}

// TestFaultGracefulShutdown stops a worker process with SIGTERM while 1,000
// short jobs (random work up to 500ms) run on concurrency 100. The worker (signal.NotifyContext, as
// the CLI does) drains: every job it started finishes, Run returns nil and
// the process exits 0; a second worker processes the rest. The in-process
// variant, with cancellation and with an expiring shutdown timeout, is
// TestFaultGracefulShutdownInProcess.
func TestFaultGracefulShutdown(t *testing.T) {
	rs := redistest.Start(t)
	const topic, n = "sigterm", 1000
	logger, _ := testLogger(t)
	prod := openBroker(t, rs.URL(), rs.Namespace, "producer", logger, nil)
	all := ids("s", n)
	publishAll(t, prod, topic, all, func(string) []byte { return []byte(`{}`) })

	rep := reportPath(t)
	shutdown := 10 * time.Second
	cfg := workerConfig{
		URL: rs.URL(), Namespace: rs.Namespace, Topic: topic, Lease: testLease,
		Concurrency: 100, ShutdownTimeout: shutdown, Behavior: behaveWork, Work: 500 * time.Millisecond, Log: rep,
	}
	a := cfg
	a.Consumer = "first"
	first := startWorker(t, a)
	waitFor(t, 30*time.Second, "200 jobs started", func() bool { return len(readReport(t, rep).Starts) >= 200 })
	first.Signal(syscall.SIGTERM)
	atSignal := readReport(t, rep)
	t.Logf("SIGTERM with %d jobs started and %d finished", len(atSignal.Starts), len(atSignal.Done))
	if err := first.Wait(shutdown + 30*time.Second); err != nil {
		t.Fatalf("worker exit after SIGTERM: %v, want status 0", err)
	}
	r := readReport(t, rep)
	if len(r.Exits) != 1 || r.Exits[0] != "ok" {
		t.Fatalf("Run's result %q, want [ok]", r.Exits)
	}
	started, finished := map[string]bool{}, map[string]bool{}
	for _, e := range r.Events {
		if e.Pid != first.Pid() {
			continue
		}
		switch e.Kind {
		case "start":
			started[e.ID] = true
		case "done":
			finished[e.ID] = true
		}
	}
	for id := range started {
		if !finished[id] {
			t.Errorf("job %s started before SIGTERM and did not finish in the drain", id)
		}
	}
	t.Logf("first worker processed %d jobs before exiting", len(finished))

	b := cfg
	b.Consumer = "second"
	second := startWorker(t, b)
	acc := waitAccounted(t, prod, topic, all, func() map[string]int { return readReport(t, rep).Done }, settleWait)
	if acc.Processed != n {
		t.Errorf("processed %d of %d", acc.Processed, n)
	}
	requireNoDuplicates(t, acc, "a graceful shutdown")
	second.Signal(syscall.SIGTERM)
	if err := second.Wait(shutdown + 30*time.Second); err != nil {
		t.Errorf("second worker exit after SIGTERM: %v", err)
	}
}
