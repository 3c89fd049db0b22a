package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"runtime/debug"
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

// ErrJobsAbandoned is matched by the error Run returns when the shutdown
// timeout passed with jobs still running. Those jobs were not settled: the
// broker redelivers them after their lease.
var ErrJobsAbandoned = errors.New("conveyor: jobs abandoned at shutdown")

// PanicError is the error a handler's panic becomes. The server recovers
// panics itself, so a panicking handler never kills its worker; the job is
// then treated as a plain failure, and dead-lettered with reason
// job.ReasonPanic when the retry policy gives up.
type PanicError struct {
	// Value is what the handler passed to panic.
	Value any
	// Stack is the goroutine's stack at the panic.
	Stack []byte
}

// Error returns the panic value and the stack.
func (e *PanicError) Error() string {
	return fmt.Sprintf("conveyor: handler panic: %v\n%s", e.Value, e.Stack)
}

// Panicked reports true: it marks the error of a recovered panic, so that
// retry.Policy.Decide dead-letters it with reason job.ReasonPanic on the
// last attempt.
func (e *PanicError) Panicked() bool { return true }

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
	log     *slog.Logger
	workers []*worker
	idle    chan *worker

	mu    sync.Mutex
	state int // stateNew, stateRunning, stateDone
	stop  context.CancelFunc
	done  chan struct{} // closed when Run returns
	err   error         // Run's result

	draining atomic.Bool
	abandon  atomic.Bool
	checker  broker.HealthChecker
	fetchErr atomic.Pointer[string] // set while fetches fail

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
	s := &Server{
		b:      b,
		h:      h,
		opts:   o,
		topics: topics,
		log:    o.Logger,
		idle:   make(chan *worker, o.Concurrency),
		done:   make(chan struct{}),
		acks:   newAckQueue(o.AckBatch),
	}
	s.retry, s.retrySet = o.retryPolicy()
	s.namer, _ = h.(interface{ HandlerName(topic string) string })
	s.checker, _ = b.(broker.HealthChecker)
	s.workers = make([]*worker, o.Concurrency)
	for i := range s.workers {
		s.workers[i] = &worker{s: s, jobs: make(chan *broker.Delivery, 1)}
	}
	return s, nil
}

// Topics returns the topics the server fetches, sorted.
func (s *Server) Topics() []string { return slices.Clone(s.topics) }

// Run processes jobs until ctx ends or [Server.Shutdown] is called, then
// drains: it stops fetching, waits up to Options.ShutdownTimeout for the
// jobs in flight, cancels the context of those still running and waits for
// their handlers to return, leaving them unsettled (the broker redelivers
// them after their lease). Pending acknowledgements are flushed before Run
// returns.
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
	jobCtx, cancelJobs := context.WithCancel(base)
	defer cancelJobs()

	s.log.Info("conveyor: server started", "topics", s.topics, "concurrency", s.opts.Concurrency)

	var workers sync.WaitGroup
	for _, w := range s.workers {
		s.idle <- w
		workers.Go(func() { w.loop(jobCtx, base) })
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

	fatal := s.fetchLoop(fetchCtx)

	// Drain.
	s.draining.Store(true)
	for _, w := range s.workers {
		close(w.jobs)
	}
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
		s.log.Warn("conveyor: shutdown timeout passed: cancelling the jobs still running; they stay pending and are redelivered after their lease",
			"in_flight", s.inFlight(), "timeout", s.opts.ShutdownTimeout)
		cancelJobs()
		<-workersDone
	}
	stopHeartbeat()
	<-hbDone
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
		ds, err := s.b.Fetch(ctx, s.topics, len(ws))
		s.stats.fetches.Add(1)
		n := min(len(ds), len(ws))
		for i, d := range ds[:n] {
			ws[i].start(d)
		}
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

// worker runs one job at a time from its jobs channel.
type worker struct {
	s    *Server
	jobs chan *broker.Delivery
	cur  atomic.Pointer[broker.Delivery] // the delivery held, for heartbeats
	n    atomic.Int64                    // jobs processed
	_    [40]byte                        // keep workers' counters on separate cache lines
}

// start hands d to the idle worker w.
func (w *worker) start(d *broker.Delivery) {
	w.cur.Store(d)
	w.jobs <- d
}

func (w *worker) loop(jobCtx, settleCtx context.Context) {
	s := w.s
	for d := range w.jobs {
		err := s.call(jobCtx, &d.Job)
		w.n.Add(1)
		if s.abandon.Load() {
			// The shutdown timeout passed while this job ran: leave it
			// unsettled for redelivery.
			s.stats.abandoned.Add(1)
		} else {
			s.settle(settleCtx, d, err)
		}
		w.cur.Store(nil)
		s.idle <- w
	}
}

// call runs the handler, turning a panic into a *PanicError.
func (s *Server) call(ctx context.Context, j *job.Job) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r, Stack: debug.Stack()}
			s.stats.panics.Add(1)
			s.log.Error("conveyor: handler panicked", "job_id", j.ID, "topic", j.Topic, "attempt", j.Attempt,
				"panic", fmt.Sprint(r), "stack", string(err.(*PanicError).Stack))
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
