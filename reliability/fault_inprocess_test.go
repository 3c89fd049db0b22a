package reliability

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker/redis/redistest"
	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/middleware"
	"github.com/conveyor-jobs/conveyor/retry"
	"github.com/conveyor-jobs/conveyor/server"
)

// randomWork returns work that takes a random time up to d.
func randomWork(d time.Duration) func(context.Context, *job.Job) error {
	return func(ctx context.Context, _ *job.Job) error {
		return sleepCtx(ctx, rand.N(d))
	}
}

// TestFaultGracefulShutdownInProcess cancels Run's context while 1,000 short
// jobs run on concurrency 100. With a generous shutdown timeout every job in
// flight finishes and Run returns nil; with a shutdown timeout shorter than
// the jobs, Run returns ErrJobsAbandoned and the abandoned jobs are recovered
// by another server after the lease. Either way nothing is lost and no job
// runs successfully twice.
func TestFaultGracefulShutdownInProcess(t *testing.T) {
	tests := []struct {
		name     string
		work     time.Duration // most random work per job
		shutdown time.Duration
		wantErr  error
	}{
		{name: "drain", work: 200 * time.Millisecond, shutdown: 10 * time.Second},
		{name: "timeout", work: 3 * time.Second, shutdown: 200 * time.Millisecond, wantErr: server.ErrJobsAbandoned},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rs := redistest.Start(t)
			const topic, n = "drain", 1000
			logger, _ := testLogger(t)
			prod := openBroker(t, rs.URL(), rs.Namespace, "producer", logger, nil)
			all := ids("g", n)
			publishAll(t, prod, topic, all, func(string) []byte { return []byte(`{}`) })

			first, second := newLedger(), newLedger()
			ba := openBroker(t, rs.URL(), rs.Namespace, "first", logger, nil)
			muxA := job.NewMux()
			muxA.Handle(topic, recordingHandler(first, randomWork(tc.work)))
			a := runServer(t, ba, muxA, &server.Options{Concurrency: 100, ShutdownTimeout: tc.shutdown, Logger: logger})
			waitFor(t, 30*time.Second, "200 deliveries", func() bool {
				first.mu.Lock()
				defer first.mu.Unlock()
				return len(first.deliveries) >= 200
			})
			err := a.Stop(t)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("Run = %v, want %v", err, tc.wantErr)
			}
			first.mu.Lock()
			unfinished := 0
			for id := range first.deliveries {
				if first.done[id] == 0 {
					unfinished++
				}
			}
			first.mu.Unlock()
			t.Logf("first server: %d delivered, %d finished, %d unfinished at Run's return", len(first.deliveries), first.DoneCount(), unfinished)
			if tc.wantErr == nil && unfinished > 0 {
				t.Errorf("%d jobs in flight did not finish in the drain", unfinished)
			}
			if tc.wantErr != nil && unfinished == 0 {
				t.Errorf("no job was abandoned, though the shutdown timeout was shorter than the work")
			}

			bb := openBroker(t, rs.URL(), rs.Namespace, "second", logger, nil)
			muxB := job.NewMux()
			muxB.Handle(topic, recordingHandler(second, randomWork(10*time.Millisecond)))
			runServer(t, bb, muxB, &server.Options{Concurrency: 50, Logger: logger})
			merged := func() map[string]int {
				m := first.Done()
				for id, c := range second.Done() {
					m[id] += c
				}
				return m
			}
			acc := waitAccounted(t, prod, topic, all, merged, settleWait)
			if acc.Processed != n {
				t.Errorf("processed %d of %d", acc.Processed, n)
			}
			// A finished job's acknowledgement is sent before Run returns,
			// and an abandoned job did not succeed: no job runs twice.
			requireNoDuplicates(t, acc, "a graceful shutdown")
		})
	}
}

// TestFaultLongJob runs a handler for three leases. Its server renews the
// lease by heartbeat, so a second consumer of the same group, polling and
// recovering expired leases the whole time, never receives the job.
func TestFaultLongJob(t *testing.T) {
	rs := redistest.Start(t)
	const topic = "long"
	logger, _ := testLogger(t)
	prod := openBroker(t, rs.URL(), rs.Namespace, "producer", logger, nil)
	l := newLedger()
	var byA, byB countMap
	h := func(who *countMap) job.Handler {
		return recordingHandler(l, func(ctx context.Context, j *job.Job) error {
			who.add(j.ID)
			if j.ID == "long-job" {
				return sleepCtx(ctx, 3*testLease)
			}
			return nil
		})
	}
	ba := openBroker(t, rs.URL(), rs.Namespace, "a", logger, nil)
	muxA := job.NewMux()
	muxA.Handle(topic, h(&byA))
	runServer(t, ba, muxA, &server.Options{Concurrency: 2, Logger: logger})
	publishAll(t, prod, topic, []string{"long-job"}, func(string) []byte { return []byte(`{}`) })
	waitFor(t, 10*time.Second, "server a to take the long job", func() bool { return byA.get("long-job") == 1 })

	bb := openBroker(t, rs.URL(), rs.Namespace, "b", logger, nil)
	muxB := job.NewMux()
	muxB.Handle(topic, h(&byB))
	runServer(t, bb, muxB, &server.Options{Concurrency: 2, Logger: logger})
	// Short jobs keep flowing to both while the long one runs.
	short := ids("short", 50)
	publishAll(t, prod, topic, short, func(string) []byte { return []byte(`{}`) })

	all := append([]string{"long-job"}, short...)
	acc := waitAccounted(t, prod, topic, all, l.Done, settleWait)
	requireNoDuplicates(t, acc, "two live workers sharing a topic")
	if got := l.Deliveries("long-job"); got != 1 {
		t.Errorf("the long job was delivered %d times (a: %d, b: %d), want once", got, byA.get("long-job"), byB.get("long-job"))
	}
	if byB.get("long-job") != 0 {
		t.Errorf("the second consumer received the long job")
	}
	if ba.Lost()+bb.Lost() != 0 {
		t.Errorf("brokers report %d lost entries", ba.Lost()+bb.Lost())
	}
}

// TestFaultPanicStorm runs handlers that panic on every third job, with the
// server's own recovery and with the middleware stack. The worker stays up;
// each panicking job is retried per the policy and then dead-lettered with
// reason panic; the others are processed.
func TestFaultPanicStorm(t *testing.T) {
	tests := []struct {
		name  string
		setup func(mux *job.Mux) *server.Options
	}{
		{name: "server", setup: func(*job.Mux) *server.Options {
			return &server.Options{Retry: &retry.Policy{Schedule: []time.Duration{10 * time.Millisecond, 10 * time.Millisecond}, RandomizationFactor: retry.NoJitter}}
		}},
		{name: "middleware", setup: func(mux *job.Mux) *server.Options {
			mux.Use(middleware.Default(&middleware.DefaultOptions{Retry: &retry.Policy{
				Schedule:            []time.Duration{10 * time.Millisecond, 10 * time.Millisecond},
				RandomizationFactor: retry.NoJitter,
			}}))
			return &server.Options{}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rs := redistest.Start(t)
			const topic, n, attempts = "panics", 300, 3
			logger, _ := testLogger(t)
			b := openBroker(t, rs.URL(), rs.Namespace, "worker", logger, nil)
			all := ids("p", n)
			panics := map[string]bool{}
			for i, id := range all {
				if i%3 == 0 {
					panics[id] = true
				}
			}
			l := newLedger()
			mux := job.NewMux()
			o := tc.setup(mux)
			mux.Handle(topic, recordingHandler(l, func(_ context.Context, j *job.Job) error {
				if panics[j.ID] {
					panic("storm: " + j.ID)
				}
				return nil
			}))
			o.Concurrency, o.Logger = 8, logger
			r := runServer(t, b, mux, o)
			publishAll(t, b, topic, all, func(string) []byte { return []byte(`{}`) })
			acc := waitAccounted(t, b, topic, all, l.Done, settleWait)
			if !r.Running() {
				t.Fatalf("the server stopped: %v", r.err)
			}
			if acc.Processed != n-len(panics) || acc.DeadLettered != len(panics) {
				t.Errorf("processed %d, dead-lettered %d; want %d and %d", acc.Processed, acc.DeadLettered, n-len(panics), len(panics))
			}
			for id := range panics {
				dl, ok := acc.DeadByID[id]
				if !ok {
					t.Errorf("panicking job %s not dead-lettered", id)
					continue
				}
				if dl.Job.Failure == nil || dl.Job.Failure.Reason != job.ReasonPanic {
					t.Errorf("dead letter %s: failure %+v, want reason %q", id, dl.Job.Failure, job.ReasonPanic)
				}
				if !strings.Contains(dl.Job.Failure.Error, "storm: "+id) {
					t.Errorf("dead letter %s: error %q does not carry the panic value", id, dl.Job.Failure.Error)
				}
				if got := l.Deliveries(id); got != attempts {
					t.Errorf("panicking job %s ran %d times, want %d", id, got, attempts)
				}
			}
		})
	}
}

// TestFaultRedisRestart stops Redis (AOF, appendfsync always) mid-run twice,
// once gracefully and once with SIGKILL, and starts it again. A proxy keeps
// the address the worker knows stable in case the restart changes the port.
// The server logs the outage, backs off, reconnects and finishes; jobs
// published during and after the outage are processed too.
func TestFaultRedisRestart(t *testing.T) {
	rs := redistest.Start(t, redistest.WithAOF())
	p := startProxy(t, rs.Addr())
	const topic, n = "restart", 3000
	logger, logs := testLogger(t)
	prod := openBroker(t, p.URL(), rs.Namespace, "producer", logger, nil)
	all := ids("r", n)
	third := n / 3
	publishAll(t, prod, topic, all[:third], func(string) []byte { return []byte(`{}`) })

	l := newLedger()
	b := openBroker(t, p.URL(), rs.Namespace, "worker", logger, nil)
	mux := job.NewMux()
	mux.Handle(topic, recordingHandler(l, randomWork(5*time.Millisecond)))
	r := runServer(t, b, mux, &server.Options{Concurrency: 16, Logger: logger})

	for round, stop := range []func(testing.TB){rs.Stop, rs.Kill} {
		// Each outage starts once the server has recovered from the one
		// before: a reconnection through a container's port forwarding can
		// take go-redis's dial, read and retry timeouts (tens of seconds),
		// and an outage during an outage logs nothing new.
		waitFor(t, 90*time.Second, "recovery from the previous outage", func() bool {
			return countLines(logs.String(), "fetching recovered") >= round
		})
		waitFor(t, 30*time.Second, "progress before the outage", func() bool { return l.DoneCount() >= (round+1)*third/2 })
		failedBefore := countLines(logs.String(), "fetch failed")
		stop(t)
		waitFor(t, 30*time.Second, "the server to log the outage", func() bool {
			return countLines(logs.String(), "fetch failed") > failedBefore
		})
		rs.Start(t)
		p.Repoint(rs.Addr())
		publishAll(t, prod, topic, all[(round+1)*third:min((round+2)*third, n)], func(string) []byte { return []byte(`{}`) })
	}
	acc := waitAccounted(t, prod, topic, all, l.Done, settleWait)
	if acc.Processed != n {
		t.Errorf("processed %d of %d", acc.Processed, n)
	}
	if !r.Running() {
		t.Fatalf("the server stopped: %v", r.err)
	}
	out := logs.String()
	if got := countLines(out, "fetching recovered"); got < 2 {
		t.Errorf("the server logged %d recoveries, want 2", got)
	}
	if b.Lost() != 0 {
		t.Errorf("broker reports %d lost entries", b.Lost())
	}
}

// TestFaultNetworkCut puts a proxy between the worker and Redis and drops all
// connections, refusing new ones, for two seconds, twice, while a producer
// with its own connection keeps publishing. The server recovers without a
// restart and every job is processed.
func TestFaultNetworkCut(t *testing.T) {
	rs := redistest.Start(t)
	p := startProxy(t, rs.Addr())
	const topic, n = "netcut", 3000
	logger, logs := testLogger(t)
	prod := openBroker(t, rs.URL(), rs.Namespace, "producer", logger, nil)
	all := ids("n", n)
	third := n / 3
	publishAll(t, prod, topic, all[:third], func(string) []byte { return []byte(`{}`) })

	l := newLedger()
	b := openBroker(t, p.URL(), rs.Namespace, "worker", logger, nil)
	mux := job.NewMux()
	mux.Handle(topic, recordingHandler(l, randomWork(5*time.Millisecond)))
	r := runServer(t, b, mux, &server.Options{Concurrency: 16, Logger: logger})

	for round := range 2 {
		// Each cut comes after the server is fetching again (it recovered
		// from the previous cut) and half of the jobs published since are
		// done: a cut that lands during the previous outage is no new
		// outage.
		waitFor(t, 30*time.Second, "progress before the cut", func() bool {
			return countLines(logs.String(), "fetching recovered") >= round && l.DoneCount() >= round*third+third/2
		})
		failedBefore := countLines(logs.String(), "fetch failed")
		p.Cut()
		cutAt := time.Now()
		publishAll(t, prod, topic, all[(round+1)*third:(round+2)*third], func(string) []byte { return []byte(`{}`) })
		waitFor(t, 30*time.Second, "the server to log the outage", func() bool {
			return countLines(logs.String(), "fetch failed") > failedBefore
		})
		// The length of the outage is the fault being injected, not a
		// wait for correctness.
		time.Sleep(time.Until(cutAt.Add(2 * time.Second)))
		p.Restore()
	}
	acc := waitAccounted(t, prod, topic, all, l.Done, settleWait)
	if acc.Processed != n {
		t.Errorf("processed %d of %d", acc.Processed, n)
	}
	if !r.Running() {
		t.Fatalf("the server stopped: %v", r.err)
	}
	if got := countLines(logs.String(), "fetching recovered"); got < 2 {
		t.Errorf("the server logged %d recoveries, want 2", got)
	}
	if b.Lost() != 0 {
		t.Errorf("broker reports %d lost entries", b.Lost())
	}
}

// countMap is a concurrency-safe counter per key. The zero value is ready.
type countMap struct {
	mu sync.Mutex
	m  map[string]int
}

func (c *countMap) add(k string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]int{}
	}
	c.m[k]++
}

func (c *countMap) get(k string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[k]
}
