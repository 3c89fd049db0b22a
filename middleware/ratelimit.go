package middleware

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/conveyor-jobs/conveyor/internal/redact"
	"github.com/conveyor-jobs/conveyor/job"
)

// Header names the key functions of [RateLimit] read.
const (
	// TenantHeader is the job header naming the tenant a job runs for.
	TenantHeader = "tenant"
	// OperationHeader is the job header naming the operation a job performs
	// (an LLM call, a tool, …); [ByOperation] falls back to the topic.
	OperationHeader = "operation"
)

// Limit is a token bucket: Rate tokens per second are added, up to Burst.
// Each job takes one token.
type Limit struct {
	// Rate is the sustained number of jobs per second. Zero, negative or
	// +Inf means no limit.
	Rate float64
	// Burst is how many jobs may start at once; values below 1 mean 1.
	Burst int
}

// PerSecond returns a Limit of n jobs per second with the given burst.
func PerSecond(n float64, burst int) Limit { return Limit{Rate: n, Burst: burst} }

// Every returns a Limit of one job per interval with the given burst.
func Every(interval time.Duration, burst int) Limit {
	if interval <= 0 {
		return Limit{Rate: math.Inf(1), Burst: burst}
	}
	return Limit{Rate: float64(time.Second) / float64(interval), Burst: burst}
}

// Unlimited reports whether l lets every job through.
func (l Limit) Unlimited() bool { return l.Rate <= 0 || math.IsInf(l.Rate, 1) || math.IsNaN(l.Rate) }

// burst returns l.Burst, at least 1.
func (l Limit) burst() int { return max(l.Burst, 1) }

// LimiterStore holds token buckets by key. [NewMemoryStore] keeps them in the
// process; package middleware/redisstore shares them between processes.
// Implementations must be safe for concurrent use.
type LimiterStore interface {
	// Allow takes one token from key's bucket, created full with limit
	// when it does not exist. It returns ok when a token was taken, or
	// else how long until one is due. now is the caller's clock; a
	// distributed store may use a shared clock instead.
	Allow(ctx context.Context, key string, limit Limit, now time.Time) (ok bool, retryAfter time.Duration, err error)
}

// KeyFunc picks the bucket a job draws from. An empty key means the job is
// not limited.
type KeyFunc func(j *job.Job) string

// ByTopic keys buckets by the job's topic.
func ByTopic() KeyFunc { return func(j *job.Job) string { return j.Topic } }

// ByHeader keys buckets by the value of header name; jobs without it are not
// limited.
func ByHeader(name string) KeyFunc { return func(j *job.Job) string { return j.Header(name) } }

// ByTenant keys buckets by the [TenantHeader] header; jobs without a tenant are
// not limited.
func ByTenant() KeyFunc { return ByHeader(TenantHeader) }

// ByOperation keys buckets by the [OperationHeader] header, or the topic when
// the header is not set.
func ByOperation() KeyFunc {
	return func(j *job.Job) string {
		if op := j.Header(OperationHeader); op != "" {
			return op
		}
		return j.Topic
	}
}

// ByTenantOperation keys buckets by "<tenant>:<operation>", as [ByTenant] and
// [ByOperation] give them: one bucket per tenant and operation.
func ByTenantOperation() KeyFunc { return Combine(ByTenant(), ByOperation()) }

// Combine joins the keys of fns with ":"; if any of them is empty, so is the
// result (the job is not limited).
func Combine(fns ...KeyFunc) KeyFunc {
	return func(j *job.Job) string {
		key := ""
		for i, f := range fns {
			k := f(j)
			if k == "" {
				return ""
			}
			if i > 0 {
				key += ":"
			}
			key += k
		}
		return key
	}
}

// RateLimitOptions configures [RateLimit].
type RateLimitOptions struct {
	// Key picks a job's bucket; nil means [ByTopic].
	Key KeyFunc
	// Limit applies to every key that Limits does not list. The zero
	// Limit means no limit, so that with Limits set only the listed keys
	// are limited.
	Limit Limit
	// Limits sets the limit of particular keys. The map is copied.
	Limits map[string]Limit
	// LimitOf, when set, replaces Limit and Limits: it returns the limit of
	// a key. It must be safe for concurrent use.
	LimitOf func(key string) Limit
	// Store holds the buckets; nil means a new [NewMemoryStore] for this
	// middleware. Use middleware/redisstore to share limits between
	// workers.
	Store LimiterStore
	// MinDelay is the shortest snooze; zero means 10 ms.
	MinDelay time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Logger receives store errors; nil means slog.Default().
	Logger *slog.Logger
	// FailClosed snoozes jobs (for one second) when the store fails,
	// instead of the default of running them unlimited.
	FailClosed bool
}

// RateLimit returns middleware that runs a job only when a token is
// available in its bucket. A limited job is not run: RateLimit returns
// job.SnoozeBecause(wait, [ErrRateLimited]), wait being the time until a token
// is due, so the broker re-enqueues it without spending an attempt.
//
// To express several rules (a limit per tenant and another per operation),
// stack several RateLimit middlewares; give each its own keys (or Store) so
// their buckets do not collide.
//
// It panics if opts is nil.
func RateLimit(opts *RateLimitOptions) job.Middleware {
	if opts == nil {
		panic("conveyor: middleware.RateLimit needs options")
	}
	o := *opts
	if o.Key == nil {
		o.Key = ByTopic()
	}
	if o.LimitOf == nil {
		limits := make(map[string]Limit, len(o.Limits))
		for k, v := range o.Limits {
			limits[k] = v
		}
		def := o.Limit
		o.LimitOf = func(key string) Limit {
			if l, ok := limits[key]; ok {
				return l
			}
			return def
		}
	}
	if o.Store == nil {
		o.Store = NewMemoryStore(nil)
	}
	if o.MinDelay <= 0 {
		o.MinDelay = 10 * time.Millisecond
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return func(next job.Handler) job.Handler {
		return job.HandlerFunc(func(ctx context.Context, j *job.Job) error {
			key := o.Key(j)
			if key == "" {
				return next.ProcessJob(ctx, j)
			}
			limit := o.LimitOf(key)
			if limit.Unlimited() {
				return next.ProcessJob(ctx, j)
			}
			ok, wait, err := o.Store.Allow(ctx, key, limit, o.Now())
			if err != nil {
				logger := o.Logger
				if logger == nil {
					logger = slog.Default()
				}
				logger.WarnContext(ctx, "rate limit store failed", "key", key, "topic", j.Topic, "job_id", j.ID,
					"error", redact.URLsIn(err.Error()), "fail_closed", o.FailClosed)
				if o.FailClosed {
					return job.SnoozeBecause(time.Second, fmt.Errorf("%w: store: %w", ErrRateLimited, err))
				}
				return next.ProcessJob(ctx, j)
			}
			if !ok {
				return job.SnoozeBecause(max(wait, o.MinDelay), ErrRateLimited)
			}
			return next.ProcessJob(ctx, j)
		})
	}
}

// MemoryStoreOptions configures [NewMemoryStore]. The zero value is usable.
type MemoryStoreOptions struct {
	// MaxKeys bounds the number of buckets kept; zero means 100,000. Idle
	// buckets that have refilled are dropped first, which changes nothing
	// (a new bucket starts full); past MaxKeys, the buckets closest to full
	// are dropped, which lets those keys start over with a full bucket.
	MaxKeys int
}

// MemoryStore is a [LimiterStore] that keeps buckets in the process, using
// golang.org/x/time/rate. It is safe for concurrent use. Memory stays bounded:
// a bucket is dropped once it has refilled, so it costs nothing for tenants
// that come and go, and MaxKeys caps the rest.
type MemoryStore struct {
	maxKeys int

	mu        sync.Mutex
	buckets   map[string]*bucket
	sweepLen  int       // sweep when the map grows past this
	lastSweep time.Time // or when this is a minute old
}

type bucket struct {
	lim    *rate.Limiter
	fullAt time.Time // when the bucket will have refilled to its burst
}

// NewMemoryStore returns an empty MemoryStore; opts may be nil.
func NewMemoryStore(opts *MemoryStoreOptions) *MemoryStore {
	s := &MemoryStore{maxKeys: 100_000, buckets: make(map[string]*bucket), sweepLen: 1024}
	if opts != nil && opts.MaxKeys > 0 {
		s.maxKeys = opts.MaxKeys
	}
	return s
}

// Allow implements [LimiterStore] with now as the clock.
func (s *MemoryStore) Allow(_ context.Context, key string, limit Limit, now time.Time) (bool, time.Duration, error) {
	if limit.Unlimited() {
		return true, 0, nil
	}
	r, burst := rate.Limit(limit.Rate), limit.burst()

	s.mu.Lock()
	defer s.mu.Unlock()
	s.maybeSweep(now)
	b := s.buckets[key]
	if b == nil {
		b = &bucket{lim: rate.NewLimiter(r, burst)}
		s.buckets[key] = b
	} else if b.lim.Limit() != r || b.lim.Burst() != burst {
		b.lim.SetLimitAt(now, r)
		b.lim.SetBurstAt(now, burst)
	}
	res := b.lim.ReserveN(now, 1)
	ok, wait := true, time.Duration(0)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		ok, wait = false, d
	}
	missing := float64(burst) - b.lim.TokensAt(now)
	b.fullAt = now.Add(time.Duration(missing / float64(r) * float64(time.Second)))
	return ok, wait, nil
}

// Len returns the number of buckets held.
func (s *MemoryStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.buckets)
}

// maybeSweep drops refilled buckets when the map has doubled since the last
// sweep or a minute has passed, so the cost is amortised O(1) per call; then
// enforces maxKeys. s.mu is held.
func (s *MemoryStore) maybeSweep(now time.Time) {
	if len(s.buckets) < s.sweepLen && now.Sub(s.lastSweep) < time.Minute && len(s.buckets) < s.maxKeys {
		return
	}
	s.lastSweep = now
	for k, b := range s.buckets {
		if !b.fullAt.After(now) {
			delete(s.buckets, k)
		}
	}
	if over := len(s.buckets) - s.maxKeys + 1; over > 0 {
		// Drop the buckets closest to full, and a tenth more so that the
		// next sweep is not due at once.
		over += s.maxKeys / 10
		keys := make([]string, 0, len(s.buckets))
		for k := range s.buckets {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(a, b string) int { return s.buckets[a].fullAt.Compare(s.buckets[b].fullAt) })
		for _, k := range keys[:min(over, len(keys))] {
			delete(s.buckets, k)
		}
	}
	s.sweepLen = max(1024, 2*len(s.buckets))
}
