package reliability

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/redis"
	"github.com/conveyor-jobs/conveyor/broker/redis/redistest"
	"github.com/conveyor-jobs/conveyor/job"
)

// expectHeld publishes key to topic and fails t unless it is refused as a
// duplicate held by job holder.
func expectHeld(t *testing.T, b *redis.Broker, topic, key, holder, when string) {
	t.Helper()
	id, err := b.Publish(context.Background(), broker.Message{Topic: topic, Payload: []byte(`{}`), UniqueKey: key})
	if !errors.Is(err, broker.ErrDuplicate) || id != holder {
		t.Fatalf("%s: Publish(key %q) = %q, %v; want ErrDuplicate naming %s", when, key, id, err, holder)
	}
}

// TestFaultUniqueWorkerSIGKILL kills a real worker process with SIGKILL
// while it runs a unique job: the key stays held by that job (publishing it
// again returns its ID) until a second worker, which recovers it after the
// lease, has run it to success.
func TestFaultUniqueWorkerSIGKILL(t *testing.T) {
	rs := redistest.Start(t)
	const topic, key = "unique-sigkill", "nightly"
	logger, _ := testLogger(t)
	prod := openBroker(t, rs.URL(), rs.Namespace, "producer", logger, nil)
	ctx := context.Background()
	if _, err := prod.Publish(ctx, broker.Message{Topic: topic, ID: "u-kill", Payload: []byte(`{}`), UniqueKey: key}); err != nil {
		t.Fatal(err)
	}
	rep := reportPath(t)
	cfg := workerConfig{
		URL: rs.URL(), Namespace: rs.Namespace, Topic: topic, Lease: testLease,
		Concurrency: 1, ShutdownTimeout: 5 * time.Second, Log: rep,
	}
	a := cfg
	a.Consumer, a.Behavior = "victim", behaveBlock
	victim := startWorker(t, a)
	waitFor(t, 30*time.Second, "the victim to run the unique job", func() bool { return readReport(t, rep).Starts["u-kill"] == 1 })
	expectHeld(t, prod, topic, key, "u-kill", "running")
	victim.Signal(syscall.SIGKILL)
	if err := victim.Wait(10 * time.Second); !isSignaled(err) {
		t.Fatalf("victim exit: %v, want killed by a signal", err)
	}
	expectHeld(t, prod, topic, key, "u-kill", "its worker killed")

	b := cfg
	b.Consumer, b.Behavior, b.Work = "rescuer", behaveWork, time.Millisecond
	rescuer := startWorker(t, b)
	waitFor(t, settleWait, "the rescuer to run the job", func() bool { return readReport(t, rep).Done["u-kill"] == 1 })
	waitFor(t, settleWait, "the key to be released by the ack", func() bool {
		id, err := prod.Publish(ctx, broker.Message{Topic: topic, ID: "u-next", Payload: []byte(`{}`), UniqueKey: key})
		if err != nil && (!errors.Is(err, broker.ErrDuplicate) || id != "u-kill") {
			t.Fatalf("Publish after the job ran: %q, %v", id, err)
		}
		return err == nil
	})
	waitFor(t, settleWait, "the next job to run", func() bool { return readReport(t, rep).Done["u-next"] == 1 })
	rescuer.Signal(syscall.SIGTERM)
	if err := rescuer.Wait(30 * time.Second); err != nil {
		t.Errorf("rescuer exit after SIGTERM: %v", err)
	}
}

// TestFaultUniqueCrashLoop publishes a unique job whose handler kills its
// worker every time it runs, and restarts the worker after each crash. The
// key stays held by the job through every crash and redelivery; when the
// job is dead-lettered (max-deliveries), the key is released, so the next
// job of that key is published and runs: a dead letter never blocks the
// jobs behind it.
func TestFaultUniqueCrashLoop(t *testing.T) {
	rs := redistest.Start(t)
	const topic, key, maxDeliveries = "unique-crash", "hourly", 2
	logger, _ := testLogger(t)
	prod := openBroker(t, rs.URL(), rs.Namespace, "producer", logger, nil)
	ctx := context.Background()
	if _, err := prod.Publish(ctx, broker.Message{Topic: topic, ID: "u-crash", Payload: []byte("crash"), UniqueKey: key, UniqueFor: time.Hour}); err != nil {
		t.Fatal(err)
	}
	rep := reportPath(t)
	cfg := workerConfig{
		URL: rs.URL(), Namespace: rs.Namespace, Topic: topic, Lease: testLease, MaxDeliveries: maxDeliveries,
		Concurrency: 1, ShutdownTimeout: 5 * time.Second, Behavior: behaveCrash, Log: rep,
	}
	dead := func() bool {
		dls, err := prod.DeadLetters(ctx, topic, "", 10)
		return err == nil && len(dls) == 1 && dls[0].Job.ID == "u-crash" &&
			dls[0].Job.Failure != nil && dls[0].Job.Failure.Reason == job.ReasonMaxDeliveries
	}
	var w *workerProc
	for gen := 0; ; gen++ {
		if gen > 3*maxDeliveries {
			t.Fatalf("still crashing after %d worker restarts", gen)
		}
		c := cfg
		c.Consumer = fmt.Sprintf("worker-%d", gen)
		w = startWorker(t, c)
		waitFor(t, settleWait, "the worker to crash or the job to be dead-lettered", func() bool { return w.Exited() || dead() })
		if !w.Exited() {
			break
		}
		if err := w.Wait(time.Second); !isSignaled(err) {
			t.Fatalf("worker %d exit: %v, want killed by its own SIGKILL", gen, err)
		}
		// No worker runs: the job waits for its lease to expire, holding
		// its key.
		expectHeld(t, prod, topic, key, "u-crash", fmt.Sprintf("after crash %d", gen+1))
	}
	if _, err := prod.Publish(ctx, broker.Message{Topic: topic, ID: "u-after", Payload: []byte(`{}`), UniqueKey: key}); err != nil {
		t.Fatalf("Publish after the crashing job was dead-lettered: %v, want the key free", err)
	}
	waitFor(t, settleWait, "the next job of the key to run", func() bool { return readReport(t, rep).Done["u-after"] == 1 })
	w.Signal(syscall.SIGTERM)
	if err := w.Wait(30 * time.Second); err != nil {
		t.Errorf("last worker exit after SIGTERM: %v", err)
	}
}
