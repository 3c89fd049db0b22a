package workflow_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/memory"
	"github.com/conveyor-jobs/conveyor/broker/redis"
	"github.com/conveyor-jobs/conveyor/internal/redistest"
	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/server"
	"github.com/conveyor-jobs/conveyor/workflow"
)

// crashSize returns the members and repetitions of the crash test: 100
// members 10 times, or CONVEYOR_BATCH_CRASH_MEMBERS members (1000 for the
// full size) CONVEYOR_BATCH_CRASH_RUNS times.
func crashSize() (members, runs int) {
	members, runs = 100, 10
	if v, err := strconv.Atoi(os.Getenv("CONVEYOR_BATCH_CRASH_MEMBERS")); err == nil && v > 0 {
		members, runs = v, 1
	}
	if v, err := strconv.Atoi(os.Getenv("CONVEYOR_BATCH_CRASH_RUNS")); err == nil && v > 0 {
		runs = v
	}
	return members, runs
}

// TestBatchCrashMemory and TestBatchCrashRedis run a batch over two
// servers: one member in ten fails once (retried), one in a hundred fails
// for good (dead-lettered), and the second server dies half way (its
// broker is closed under it while its handlers hold jobs, none of which it
// settles; their leases expire and the first server runs them). The
// callback runs exactly once, with counts equal to the ledger, and every
// member's state in the batch is the ledger's.
func TestBatchCrashMemory(t *testing.T) {
	t.Parallel()
	members, runs := crashSize()
	for i := range runs {
		root := memory.New(&memory.Options{Lease: 300 * time.Millisecond, FetchWait: 20 * time.Millisecond})
		crashRun(t, i, members, root.Consumer("s1"), root.Consumer("s2"), nil)
		_ = root.Close()
	}
}

func TestBatchCrashRedis(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	members, runs := crashSize()
	for i := range runs {
		ns := fmt.Sprintf("%s-crash%d", srv.Namespace, i)
		open := func(rdb goredis.UniversalClient, consumer string) *redis.Broker {
			b, err := redis.New(rdb, &redis.Options{Namespace: ns, Consumer: consumer, Lease: 300 * time.Millisecond,
				Block: 50 * time.Millisecond, ClaimInterval: 60 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		b1, b2 := open(srv.Client(t), "s1"), open(srv.Client(t), "s2")
		crashRun(t, i, members, b1, b2, func(ctx context.Context) { _, _ = b1.SweepBatches(ctx) })
		_ = b1.Close()
	}
}

func crashRun(t *testing.T, run, n int, b1, b2 broker.Broker, sweep func(context.Context)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	wf, err := workflow.New(b1)
	if err != nil {
		t.Fatal(err)
	}
	ms := make([]broker.Message, n)
	permanent := map[string]bool{}
	for i := range ms {
		ms[i] = broker.Message{Topic: "step", ID: fmt.Sprintf("m%d", i), Payload: []byte(strconv.Itoa(i))}
		if i%100 == 7 {
			permanent[ms[i].ID] = true
		}
	}
	id, err := wf.OpenBatch(ctx, workflow.Batch{Members: ms, Callback: &broker.Message{Topic: "agg"}})
	if err != nil {
		t.Fatal(err)
	}

	var processed, callbacks atomic.Int64
	var counts atomic.Value
	var runsMu sync.Mutex
	runs := map[string][]int{}
	step := func(ctx context.Context, j *job.Job) error {
		i, _ := strconv.Atoi(string(j.Payload))
		processed.Add(1)
		runsMu.Lock()
		runs[j.ID] = append(runs[j.ID], j.Attempt)
		runsMu.Unlock()
		switch {
		case permanent[j.ID]:
			return job.Permanent(errors.New("permanent failure"))
		case i%10 == 3 && j.Attempt == 1:
			return job.RetryIn(time.Millisecond, errors.New("transient failure"))
		}
		return nil
	}
	agg := func(ctx context.Context, j *job.Job) error {
		callbacks.Add(1)
		counts.Store(workflow.CountsOf(j))
		return nil
	}
	quiet := slog.New(slog.DiscardHandler)
	newServer := func(b broker.Broker, stepH func(context.Context, *job.Job) error) *server.Server {
		mux := job.NewMux()
		mux.HandleFunc("step", stepH)
		mux.HandleFunc("agg", agg)
		s, err := server.New(b, mux, &server.Options{Concurrency: 4, Logger: quiet, ShutdownTimeout: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	// Server 2 dies when half the members were processed: its handlers
	// then hold their jobs until after its broker is closed.
	dying := make(chan struct{})
	released := make(chan struct{})
	var dieOnce sync.Once
	var held atomic.Int64
	step2 := func(ctx context.Context, j *job.Job) error {
		if processed.Load() >= int64(n/2) {
			dieOnce.Do(func() { close(dying) })
			held.Add(1)
			<-released
			return nil // settled on a closed broker: nothing happens
		}
		return step(ctx, j)
	}
	// Server 1 takes jobs from the start but runs none before server 2
	// died, so that server 2 surely gets half of them.
	step1 := func(ctx context.Context, j *job.Job) error {
		select {
		case <-dying:
		case <-ctx.Done():
			return ctx.Err()
		}
		return step(ctx, j)
	}
	ctx1, stop1 := context.WithCancel(ctx)
	ctx2, stop2 := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(released) }) }
	defer func() {
		stop1()
		stop2()
		release()
		wg.Wait()
	}()
	for _, r := range []struct {
		s   *server.Server
		ctx context.Context
	}{{newServer(b1, step1), ctx1}, {newServer(b2, step2), ctx2}} {
		wg.Go(func() { _ = r.s.Run(r.ctx) })
	}
	select {
	case <-dying:
	case <-ctx.Done():
		t.Fatalf("run %d: server 2 never reached the half way point", run)
	}
	_ = b2.Close() // the kill: nothing server 2 holds is settled
	stop2()
	release()

	deadline := time.Now().Add(time.Minute)
	for {
		bi, err := wf.BatchInfo(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if bi.CallbackState == broker.CallbackSucceeded {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %d: batch not finished: %d/%d ended, callback %s", run, bi.Ended(), bi.Total, bi.CallbackState)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if sweep != nil {
		sweep(ctx)
	}
	stop1()
	stop2()
	wg.Wait()
	// Nothing is left to run: no second callback, no member.
	if ds, err := b1.Fetch(ctx, []string{"agg", "step"}, 10); err != nil || len(ds) != 0 {
		t.Fatalf("run %d: left after the callback: %d deliveries, %v", run, len(ds), err)
	}
	if c := callbacks.Load(); c != 1 {
		t.Fatalf("run %d: callback ran %d times", run, c)
	}
	want := workflow.Counts{Succeeded: n - len(permanent), Dead: len(permanent), Total: n}
	if got := counts.Load().(workflow.Counts); got != want {
		t.Fatalf("run %d: callback counts %+v, want %+v", run, got, want)
	}
	bi, err := wf.BatchInfo(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range bi.Members {
		if want := map[bool]string{true: broker.MemberDead, false: broker.MemberSucceeded}[permanent[m.ID]]; m.State != want {
			t.Fatalf("run %d: member %s is %s, want %s", run, m.ID, m.State, want)
		}
	}
	again := 0
	for id, a := range runs {
		if len(a) > 1 && !strings.HasSuffix(id, "3") {
			again++ // run again after the kill: its ack was lost
		}
	}
	t.Logf("run %d: %d members, %d handler runs, server 2 held %d jobs when killed, %d members run again after the kill; callback once with %+v",
		run, n, processed.Load(), held.Load(), again, want)
}
