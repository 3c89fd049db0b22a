package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/retry"
)

// ErrServerClosed is returned by [Server.Run] on a server that has already
// run or been shut down. A Server runs once.
var ErrServerClosed = errors.New("conveyor: server closed")

// ErrNoTopics is returned by [New] when neither the options nor the handler
// name a topic.
var ErrNoTopics = errors.New("conveyor: server has no topics: set Options.Topics or register handlers on the mux")

// ErrJobsAbandoned is matched by the error Run returns when jobs were
// abandoned at shutdown: still running at the shutdown timeout, they
// answered the cancellation or did not return before their lease ended.
// Those jobs were not settled: the broker redelivers them after their lease.
var ErrJobsAbandoned = errors.New("conveyor: jobs abandoned at shutdown")

// Server fetches jobs from a broker, runs them through a handler on a fixed
// pool of workers and settles each outcome with the broker.
//
// Create it with [New], start it with [Server.Run] and stop it by cancelling
// Run's context or calling [Server.Shutdown]. A Server runs once. Its
// methods are safe for concurrent use.
type Server struct {
	b       broker.Broker
	h       job.Handler
	namer   interface{ HandlerName(topic string) string }
	opts    Options
	topics  []string
	weights []broker.TopicWeight   // nil: fetch in turn (see Options.Priorities)
	prio    broker.PriorityFetcher // the broker's, if it has the power
	log     *slog.Logger
	workers []*worker
	idle    chan *worker // free slots, for the fetch loop
	ready   *readyQueue  // slots handed a delivery, for the worker goroutines

	mu    sync.Mutex
	state int // stateNew, stateRunning, stateDone
	stop  context.CancelFunc
	done  chan struct{} // closed when Run returns
	err   error         // Run's result

	draining atomic.Bool
	abandon  atomic.Bool
	lease    time.Duration // the broker's lease

	// finishMu orders workers' settles with the end of Run: a worker
	// settles under the read lock while finished is false; Run sets
	// finished, under the write lock, before it stops the acker and
	// returns.
	finishMu sync.RWMutex
	finished bool
	checker  broker.HealthChecker
	watcher  broker.CancelWatcher    // nil: the broker records no cancel requests
	progress broker.ProgressRecorder // nil: the broker keeps no progress
	now      func() time.Time        // the clock of progress reports
	fetchErr atomic.Pointer[string]  // set while fetches fail

	acks *ackQueue

	retry     retry.Policy // Options.Retry, defaults filled in
	retrySet  bool         // Options.Retry was given
	retryWarn sync.Once    // warns that the handler chain decides instead

	stats counters
}

const (
	stateNew = iota
	stateRunning
	stateDone
)

// New returns a server that fetches opts.Topics (or the handler's Topics())
// from b and processes them with h. A nil opts means all defaults.
func New(b broker.Broker, h job.Handler, opts *Options) (*Server, error) {
	if b == nil {
		return nil, fmt.Errorf("%w: nil broker", ErrInvalidOptions)
	}
	if h == nil {
		return nil, fmt.Errorf("%w: nil handler", ErrInvalidOptions)
	}
	o, err := opts.withDefaults(b.Lease())
	if err != nil {
		return nil, err
	}
	topics := slices.Clone(o.Topics)
	if len(topics) == 0 {
		if t, ok := h.(interface{ Topics() []string }); ok {
			topics = t.Topics()
		}
	}
	if len(topics) == 0 {
		return nil, ErrNoTopics
	}
	for _, t := range topics {
		if t == "" {
			return nil, fmt.Errorf("%w: empty topic", ErrInvalidOptions)
		}
	}
	slices.Sort(topics)
	topics = slices.Compact(topics)
	o.Topics = topics
	weights, err := o.priorities(topics)
	if err != nil {
		return nil, err
	}
	s := &Server{
		weights: weights,
		b:       b,
		h:       h,
		opts:    o,
		topics:  topics,
		log:     o.Logger,
		idle:    make(chan *worker, o.Concurrency),
		ready:   newReadyQueue(o.Concurrency),
		done:    make(chan struct{}),
		acks:    newAckQueue(o.AckBatch),
		lease:   b.Lease(),
	}
	s.retry, s.retrySet = o.retryPolicy()
	s.namer, _ = h.(interface{ HandlerName(topic string) string })
	s.checker, _ = b.(broker.HealthChecker)
	s.watcher, _ = b.(broker.CancelWatcher)
	s.prio, _ = b.(broker.PriorityFetcher)
	s.progress, _ = b.(broker.ProgressRecorder)
	s.now = time.Now
	s.workers = make([]*worker, o.Concurrency)
	for i := range s.workers {
		s.workers[i] = &worker{s: s}
		s.workers[i].rep.now = func() time.Time { return s.now() }
	}
	return s, nil
}

// Topics returns the topics the server fetches, sorted.
func (s *Server) Topics() []string { return slices.Clone(s.topics) }

// Run processes jobs until ctx ends or [Server.Shutdown] is called, then
// drains: it stops fetching and waits up to Options.ShutdownTimeout for the
// jobs in flight. When that timeout passes, Run stops renewing the leases of
// the jobs still running and ends their contexts with a
// [job.AbandonedError] that says when each lease ends. It then waits for
// their handlers until the last of those leases ends, and no longer: an
// outcome a handler returns while its job's lease holds is settled as usual,
// except the job's answer to the cancellation (an error matching
// context.Canceled), which leaves the job pending; a job whose handler has
// not returned when its lease ends is abandoned, and the broker redelivers
// it. Each abandoned job is logged. A handler that ignores its context can
// keep running after Run has returned, in its worker goroutine, until it
// returns; what it returns then is discarded. Pending acknowledgements are
// flushed before Run returns.
//
// Run returns nil after a graceful drain, an error matching
// [ErrJobsAbandoned] when jobs were abandoned, an error matching
// broker.ErrClosed when the broker was closed under it, and
// [ErrServerClosed] when the server has already run or been shut down.
func (s *Server) Run(ctx context.Context) error {
	fetchCtx, stop := context.WithCancel(ctx)
	defer stop()
	s.mu.Lock()
	if s.state != stateNew {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.state = stateRunning
	s.stop = stop
	s.mu.Unlock()

	err := s.run(ctx, fetchCtx)

	s.mu.Lock()
	s.state = stateDone
	s.err = err
	s.mu.Unlock()
	close(s.done)
	return err
}

func (s *Server) run(ctx, fetchCtx context.Context) error {
	base := context.WithoutCancel(ctx)
	jobCtx, cancelJobs := context.WithCancelCause(base)
	defer cancelJobs(nil)

	s.log.Info("conveyor: server started", "topics", s.topics, "concurrency", s.opts.Concurrency)
	s.logPriorities()

	var workers sync.WaitGroup
	for _, w := range s.workers {
		s.idle <- w
		workers.Go(func() { s.work(jobCtx, base) })
	}
	ackerStop := make(chan struct{})
	ackerDone := make(chan struct{})
	go func() {
		defer close(ackerDone)
		s.acker(base, s.acks, ackerStop)
	}()
	hbStop := make(chan struct{})
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		s.heartbeat(base, hbStop)
	}()
	stopHeartbeat := sync.OnceFunc(func() { close(hbStop) })
	cwDone := make(chan struct{})
	go func() {
		defer close(cwDone)
		s.watchCancels(base, hbStop)
	}()
	prDone := make(chan struct{})
	go func() {
		defer close(prDone)
		s.flushProgress(base, hbStop)
	}()

	fatal := s.fetchLoop(fetchCtx)

	// Drain.
	s.draining.Store(true)
	s.ready.close()
	workersDone := make(chan struct{})
	go func() {
		workers.Wait()
		close(workersDone)
	}()
	inflight := s.inFlight()
	if inflight > 0 {
		s.log.Info("conveyor: draining", "in_flight", inflight, "timeout", s.opts.ShutdownTimeout)
	}
	timer := time.NewTimer(s.opts.ShutdownTimeout)
	select {
	case <-workersDone:
		timer.Stop()
	case <-timer.C:
		s.abandon.Store(true)
		stopHeartbeat() // let the leases run out
		<-hbDone        // the lease ends are final
		<-cwDone
		<-prDone
		ab, last := s.leaseEnds()
		s.log.Warn("conveyor: shutdown timeout passed: cancelling the jobs still running; an outcome returned while its lease holds is settled, the other jobs stay pending and are redelivered after their lease",
			"in_flight", s.inFlight(), "timeout", s.opts.ShutdownTimeout, "wait_until", last)
		cancelJobs(ab)
		wait := time.NewTimer(time.Until(last))
		select {
		case <-workersDone:
			wait.Stop()
		case <-wait.C:
			s.leaveRunning()
		}
	}
	stopHeartbeat()
	<-hbDone
	<-cwDone
	<-prDone
	close(ackerStop)
	<-ackerDone

	st := s.Stats()
	s.log.Info("conveyor: server stopped", "processed", st.Processed, "acked", st.Acked,
		"abandoned", st.Abandoned, "settle_errors", st.SettleErrors)
	var errs []error
	if fatal != nil {
		errs = append(errs, fatal)
	}
	if st.Abandoned > 0 {
		errs = append(errs, fmt.Errorf("%w: %d job(s) still running after %v were left for redelivery after their lease",
			ErrJobsAbandoned, st.Abandoned, s.opts.ShutdownTimeout))
	}
	return errors.Join(errs...)
}

// Shutdown stops the server like cancelling Run's context: Run stops
// fetching and drains. Shutdown waits for Run to return and returns Run's
// result, or ctx.Err() if ctx ends first (Run then goes on draining). On a
// server that is not running yet, Shutdown marks it closed (Run will return
// [ErrServerClosed]) and returns nil.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	switch s.state {
	case stateNew:
		s.state = stateDone
		close(s.done)
		s.mu.Unlock()
		return nil
	case stateRunning:
		s.stop()
	}
	s.mu.Unlock()
	select {
	case <-s.done:
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Done returns a channel closed when Run has returned (or when Shutdown
// closed a server that never ran).
func (s *Server) Done() <-chan struct{} { return s.done }

// fetchLoop fetches batches sized to the idle workers and hands one delivery
// to each, until ctx ends. It returns a non-nil error only when the broker is
// closed.
func (s *Server) fetchLoop(ctx context.Context) error {
	ws := make([]*worker, 0, len(s.workers))
	failures := 0
	var outage time.Time
	for {
		select {
		case w := <-s.idle:
			ws = append(ws[:0], w)
		case <-ctx.Done():
			return nil
		}
		// Take every idle worker. While fewer than three quarters are idle,
		// yield (at most three times): workers that are finishing get to
		// report in, so that the broker is asked for many jobs per call
		// rather than a few, without ever waiting on a timer. Against Redis
		// with short handlers, a first yield at half cut fetch calls about
		// sevenfold; yielding up to three quarters cut round trips per job
		// by a further sixth.
		for pass := 0; ; pass++ {
		more:
			for len(ws) < cap(ws) {
				select {
				case w := <-s.idle:
					ws = append(ws, w)
				default:
					break more
				}
			}
			if pass >= 3 || len(ws) >= cap(ws)*3/4 {
				break
			}
			runtime.Gosched()
		}
		fetched := time.Now()
		ds, err := s.fetch(ctx, len(ws))
		s.stats.fetches.Add(1)
		n := min(len(ds), len(ws))
		for i, d := range ds[:n] {
			ws[i].start(d, fetched)
		}
		s.ready.push(ws[:n])
		for _, w := range ws[n:] {
			s.idle <- w
		}
		if len(ds) > n {
			// A broker bug: more deliveries than asked for. They stay leased
			// and are redelivered after the lease; say so loudly.
			s.stats.settleErrors.Add(int64(len(ds) - n))
			s.log.Error("conveyor: broker returned more deliveries than requested; the extra ones are left for redelivery",
				"requested", len(ws), "returned", len(ds))
		}
		if err == nil {
			if failures > 0 {
				s.log.Info("conveyor: fetching recovered", "failures", failures, "outage", time.Since(outage).Round(time.Millisecond))
				failures = 0
				s.fetchErr.Store(nil)
			}
			continue
		}
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, broker.ErrClosed) {
			s.log.Error("conveyor: broker closed: stopping", "error", err)
			msg := "broker closed"
			s.fetchErr.Store(&msg)
			return fmt.Errorf("conveyor: server stopped: %w", err)
		}
		s.stats.fetchErrors.Add(1)
		failures++
		msg := err.Error()
		switch {
		case failures == 1:
			outage = time.Now()
			s.log.Error("conveyor: fetch failed: backing off until the broker answers", "error", err)
		case failures%10 == 0 || (s.fetchErr.Load() != nil && *s.fetchErr.Load() != msg):
			// A long outage, or one whose cause changed, is logged again.
			s.log.Warn("conveyor: fetch still failing", "failures", failures,
				"outage", time.Since(outage).Round(time.Millisecond), "error", err)
		}
		s.fetchErr.Store(&msg)
		t := time.NewTimer(s.opts.ErrorBackoff.delay(failures))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil
		}
	}
}

// worker is one of the server's Concurrency slots: it holds one delivery at
// a time, from the fetch to the settle, and the state of its job. The
// server's worker goroutines run the ready slots' jobs (see readyQueue).
type worker struct {
	s       *Server
	cur     atomic.Pointer[broker.Delivery] // the delivery held, for heartbeats
	renewed atomic.Int64                    // unix ns: when cur's lease was taken or last renewed
	n       atomic.Int64                    // jobs processed
	jc      jobCancel                       // cur's context, when the broker records cancel requests

	rep       reporter        // cur's result and progress (see report.go)
	repParent context.Context // the context repCtx was built from
	repCtx    context.Context // repParent with rep
}

// start hands d, fetched by a call that began at fetched, to the idle
// worker w. The caller then queues w on s.ready.
func (w *worker) start(d *broker.Delivery, fetched time.Time) {
	w.renewed.Store(fetched.UnixNano())
	w.cur.Store(d)
}

// leaseEnd returns when the lease of the delivery w holds ends, if it is not
// renewed again.
func (w *worker) leaseEnd() time.Time {
	return time.Unix(0, w.renewed.Load()).Add(w.s.lease)
}

// work runs the jobs of ready slots, one at a time, until the ready queue
// is closed and empty, and gives each slot back to the fetch loop.
func (s *Server) work(jobCtx, settleCtx context.Context) {
	for {
		w := s.ready.pop()
		if w == nil {
			return
		}
		w.run(jobCtx, settleCtx)
		s.idle <- w
	}
}

// run runs and settles the job of the delivery w holds.
func (w *worker) run(jobCtx, settleCtx context.Context) {
	s := w.s
	d := w.cur.Load()
	if s.abandon.Load() {
		// Fetched before the shutdown timeout and not started since:
		// leave it for redelivery.
		s.finish(w, nil, d, nil, settleCtx, false)
		return
	}
	ctx, cancelled := jobCtx, false
	if s.watcher != nil {
		ctx = w.jc.begin(jobCtx, d)
	}
	w.rep.begin(d)
	err := s.call(w.reportCtx(ctx), &d.Job)
	d.Result = w.rep.end()
	if s.watcher != nil {
		cancelled = w.jc.end()
	}
	w.n.Add(1)
	s.finish(w, ctx, d, err, settleCtx, cancelled)
}

// finish settles the outcome err of d, whose handler ran with ctx (nil: it
// did not run) and was cancelled at an operator's request if cancelled,
// unless the server abandoned the job: then d is left pending for
// redelivery after its lease, and logged. Once Run has returned, nothing is
// settled (Run counted and logged the job).
func (s *Server) finish(w *worker, ctx context.Context, d *broker.Delivery, err error, settleCtx context.Context, cancelled bool) {
	s.finishMu.RLock()
	defer s.finishMu.RUnlock()
	defer w.cur.Store(nil)
	if s.finished {
		return
	}
	if s.abandon.Load() {
		if ctx == nil {
			s.abandoned(d, w.leaseEnd(), "it was fetched before the shutdown timeout and did not start")
			return
		}
		now := time.Now()
		if end, ok := job.Abandoned(ctx, &d.Job, err, now); ok {
			why := "its handler answered the end of its context"
			if !now.Before(end) {
				why = "its handler returned after its lease ended"
			}
			s.abandoned(d, end, why)
			return
		}
	}
	if cancelled {
		s.settleCancelled(settleCtx, d, err)
		return
	}
	s.settle(settleCtx, d, err)
}

// abandoned counts and logs d, left unsettled at shutdown: it stays pending
// and the broker redelivers it after leaseEnd.
func (s *Server) abandoned(d *broker.Delivery, leaseEnd time.Time, why string) {
	s.stats.abandoned.Add(1)
	j := &d.Job
	s.log.Warn("conveyor: job abandoned at shutdown: "+why+"; it stays pending and is redelivered after its lease ends",
		"job_id", j.ID, "topic", j.Topic, "attempt", j.Attempt, "outcome", "abandoned",
		"redelivered_after", leaseEnd)
}

// leaseEnds returns the cause that ends the running jobs' context, which
// says when the lease of each ends, and the latest of those ends (now when
// none runs). The heartbeat must have stopped.
func (s *Server) leaseEnds() (*job.AbandonedError, time.Time) {
	ab := &job.AbandonedError{LeaseEnds: map[string]time.Time{}}
	last := time.Now()
	for _, w := range s.workers {
		d := w.cur.Load()
		if d == nil {
			continue
		}
		end := w.leaseEnd()
		if prev, ok := ab.LeaseEnds[d.Job.ID]; !ok || end.After(prev) {
			ab.LeaseEnds[d.Job.ID] = end
		}
		if end.After(last) {
			last = end
		}
	}
	return ab, last
}

// leaveRunning ends the drain with handlers still running past their
// leases: their jobs are abandoned, and whatever they return later is
// discarded.
func (s *Server) leaveRunning() {
	s.finishMu.Lock()
	defer s.finishMu.Unlock()
	s.finished = true
	for _, w := range s.workers {
		if d := w.cur.Load(); d != nil {
			s.abandoned(d, w.leaseEnd(), "its handler was still running when its lease ended")
		}
	}
}

// call runs the handler, turning a panic into a *job.PanicError.
func (s *Server) call(ctx context.Context, j *job.Job) (err error) {
	defer func() {
		if r := recover(); r != nil {
			pe := job.NewPanicError(r)
			err = pe
			s.stats.panics.Add(1)
			s.log.Error("conveyor: handler panicked", "job_id", j.ID, "topic", j.Topic, "attempt", j.Attempt,
				"panic", fmt.Sprint(r), "stack", string(pe.Stack))
		}
	}()
	return s.h.ProcessJob(ctx, j)
}

// inFlight returns the number of deliveries held by workers.
func (s *Server) inFlight() int {
	n := 0
	for _, w := range s.workers {
		if w.cur.Load() != nil {
			n++
		}
	}
	return n
}
