package middleware

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/conveyor-jobs/conveyor/job"
)

// BreakerOptions configures [CircuitBreaker] and [NewBreakers]. The zero
// value is usable: one breaker per topic with gobreaker's defaults (open
// after more than 5 consecutive failures, stay open 60 s, let 1 trial job
// through when half-open).
type BreakerOptions struct {
	// Key picks a job's breaker; nil means [ByTopic]. An empty key means
	// the job bypasses the breakers. Keys should come from a bounded set
	// (topics, operations): each key keeps a breaker for the life of the
	// process.
	Key KeyFunc
	// Settings configure every breaker (ReadyToTrip, Timeout, MaxRequests,
	// Interval, BucketPeriod). Name is set to the key. A nil IsExcluded
	// means [BreakerExcluded]. OnStateChange, if set, is called after the
	// breaker's own logging.
	Settings gobreaker.Settings
	// HalfOpenDelay is the snooze of a job rejected while a half-open
	// breaker waits for its trial jobs; zero means 1 s (or Timeout, if
	// shorter).
	HalfOpenDelay time.Duration
	// OnStateChange is called when a breaker changes state, with its key.
	// It runs under the breaker's lock: it must be quick and must not call
	// back into the breaker.
	OnStateChange func(key string, from, to gobreaker.State)
	// Logger receives a record per state change (Warn when a breaker
	// opens, Info otherwise); nil means slog.Default().
	Logger *slog.Logger
	// Now returns the current time, for the remaining open time; nil means
	// time.Now.
	Now func() time.Time
}

// BreakerExcluded is the default IsExcluded of [CircuitBreaker]'s breakers:
// it reports the errors that say nothing about the health of what the handler
// calls, which count neither as failures nor as successes:
//
//   - snoozes: the job did not run (rate limited, or snoozed by the handler);
//   - permanent errors: a bad job (undecodable payload, rejected input) is
//     the job's fault, and would otherwise let one poison job trip the
//     breaker for every good one;
//   - context.Canceled: the worker is shutting down.
//
// Timeouts, panics, plain errors and explicit job.RetryIn errors count as
// failures.
func BreakerExcluded(err error) bool {
	switch o, _ := job.Classify(err); o {
	case job.OutcomeSnooze, job.OutcomeDeadLetter:
		return true
	}
	return errors.Is(err, context.Canceled)
}

// Breakers holds one gobreaker.CircuitBreaker per key and is the
// middleware that runs jobs through them. It is safe for concurrent use.
type Breakers struct {
	o        BreakerOptions
	timeout  time.Duration
	halfOpen time.Duration
	mu       sync.Mutex
	breakers map[string]*breaker
}

type breaker struct {
	cb       *gobreaker.CircuitBreaker[struct{}]
	openedAt atomic.Int64 // unix ns of the last transition to open
}

// NewBreakers returns Breakers configured by opts, which may be nil.
func NewBreakers(opts *BreakerOptions) *Breakers {
	var o BreakerOptions
	if opts != nil {
		o = *opts
	}
	if o.Key == nil {
		o.Key = ByTopic()
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Settings.IsExcluded == nil {
		o.Settings.IsExcluded = BreakerExcluded
	}
	b := &Breakers{o: o, breakers: make(map[string]*breaker), timeout: o.Settings.Timeout}
	if b.timeout <= 0 {
		b.timeout = 60 * time.Second // gobreaker's default
	}
	b.halfOpen = o.HalfOpenDelay
	if b.halfOpen <= 0 {
		b.halfOpen = min(time.Second, b.timeout)
	}
	return b
}

// CircuitBreaker returns middleware that runs each job through its key's
// circuit breaker (github.com/sony/gobreaker/v2). While a breaker is open,
// and for jobs beyond MaxRequests while it is half-open, jobs are not run:
// they are snoozed with cause [ErrCircuitOpen] — for the time left until the
// breaker half-opens, or HalfOpenDelay — and spend no attempt. The handler's
// own errors pass through unchanged. opts may be nil; see [BreakerOptions]
// and [BreakerExcluded] for what counts as a failure.
//
// Rejections are counted by [Metrics] (event breaker_rejected, from the
// snooze's cause); state changes are logged and reported to
// BreakerOptions.OnStateChange.
func CircuitBreaker(opts *BreakerOptions) job.Middleware {
	return NewBreakers(opts).Middleware()
}

// Middleware returns the middleware running jobs through b.
func (b *Breakers) Middleware() job.Middleware {
	return func(next job.Handler) job.Handler {
		return job.HandlerFunc(func(ctx context.Context, j *job.Job) error {
			key := b.o.Key(j)
			if key == "" {
				return next.ProcessJob(ctx, j)
			}
			br := b.get(key)
			ran := false
			_, err := br.cb.Execute(func() (struct{}, error) {
				ran = true
				return struct{}{}, next.ProcessJob(ctx, j)
			})
			if ran {
				return err
			}
			delay := b.halfOpen
			if errors.Is(err, gobreaker.ErrOpenState) {
				left := b.timeout - b.o.Now().Sub(time.Unix(0, br.openedAt.Load()))
				delay = min(max(left, 10*time.Millisecond), b.timeout)
			}
			return job.SnoozeBecause(delay, ErrCircuitOpen)
		})
	}
}

// State returns the state of key's breaker; a key never seen is closed.
func (b *Breakers) State(key string) gobreaker.State {
	b.mu.Lock()
	br := b.breakers[key]
	b.mu.Unlock()
	if br == nil {
		return gobreaker.StateClosed
	}
	return br.cb.State()
}

// Counts returns the counts of key's breaker in its current state.
func (b *Breakers) Counts(key string) gobreaker.Counts {
	b.mu.Lock()
	br := b.breakers[key]
	b.mu.Unlock()
	if br == nil {
		return gobreaker.Counts{}
	}
	return br.cb.Counts()
}

func (b *Breakers) get(key string) *breaker {
	b.mu.Lock()
	defer b.mu.Unlock()
	if br := b.breakers[key]; br != nil {
		return br
	}
	br := &breaker{}
	st := b.o.Settings
	st.Name = key
	userHook := st.OnStateChange
	st.OnStateChange = func(name string, from, to gobreaker.State) {
		if to == gobreaker.StateOpen {
			br.openedAt.Store(b.o.Now().UnixNano())
		}
		level := slog.LevelInfo
		if to == gobreaker.StateOpen {
			level = slog.LevelWarn
		}
		b.o.Logger.Log(context.Background(), level, "circuit breaker state changed",
			"key", name, "from", from.String(), "to", to.String())
		if userHook != nil {
			userHook(name, from, to)
		}
		if b.o.OnStateChange != nil {
			b.o.OnStateChange(name, from, to)
		}
	}
	br.cb = gobreaker.NewCircuitBreaker[struct{}](st)
	b.breakers[key] = br
	return br
}
