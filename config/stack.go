package config

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/middleware"
	"github.com/conveyor-jobs/conveyor/retry"
)

// NewLogger returns a logger writing to w at log.level in log.format.
func (c *Config) NewLogger(w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Log.Level)) // validated by Load
	opts := &slog.HandlerOptions{Level: level}
	if c.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// RetryPolicy returns the retry policy of retry.schedule,
// retry.max_attempts and retry.jitter: the one the retry middleware of
// [Config.MiddlewareOptions] applies. Anything else that retries jobs (a
// server.Options.Retry, say) should take it from here.
func (c *Config) RetryPolicy() retry.Policy {
	p := retry.Policy{
		Schedule:            append([]time.Duration(nil), c.Retry.Schedule...),
		MaxAttempts:         c.Retry.MaxAttempts,
		RandomizationFactor: c.Retry.Jitter,
	}
	if c.Retry.Jitter == 0 {
		p.RandomizationFactor = retry.NoJitter
	}
	return p
}

// MiddlewareOptions returns the options of middleware.Default for this
// configuration: retry policy, rate-limit rules, circuit breakers and handler
// timeout. logger and rec may be nil (no logging, no metrics). store holds
// the rate-limit buckets; nil keeps them in the process (pass a
// middleware/redisstore Store when ratelimit.distributed is set).
func (c *Config) MiddlewareOptions(logger *slog.Logger, rec middleware.Recorder, store middleware.LimiterStore) *middleware.DefaultOptions {
	policy := c.RetryPolicy()
	o := &middleware.DefaultOptions{
		Logger:   logger,
		Recorder: rec,
		Retry:    &policy,
		Timeout:  c.Worker.HandlerTimeout,
	}
	if len(c.RateLimit.Rules) > 0 {
		o.RateLimit = c.rateLimitOptions(logger, store)
	}
	if c.Breaker.Failures > 0 {
		failures := uint32(c.Breaker.Failures)
		bo := &middleware.BreakerOptions{
			Settings: gobreaker.Settings{
				Timeout:     c.Breaker.Timeout,
				ReadyToTrip: func(n gobreaker.Counts) bool { return n.ConsecutiveFailures >= failures },
			},
			Logger: logger,
		}
		o.Breakers = middleware.NewBreakers(bo)
	}
	return o
}

// rateLimitOptions applies every rule a job matches: the job runs only when
// each matching rule's bucket has a token. The middleware asks one store per
// job; rulesStore fans that call out to one bucket per matching rule.
func (c *Config) rateLimitOptions(logger *slog.Logger, store middleware.LimiterStore) *middleware.RateLimitOptions {
	if store == nil {
		store = middleware.NewMemoryStore(nil)
	}
	rules := append([]Rule(nil), c.RateLimit.Rules...)
	operation := middleware.ByOperation()
	rs := &rulesStore{rules: rules, inner: store}
	return &middleware.RateLimitOptions{
		Key: func(j *job.Job) string {
			tenant, op := j.Header(middleware.TenantHeader), operation(j)
			for _, r := range rules {
				if r.matches(tenant, op) {
					return tenant + keySep + op
				}
			}
			return "" // no rule applies: not limited
		},
		// Any limited value: rulesStore applies each rule's own limit.
		Limit:  middleware.PerSecond(1, 1),
		Store:  rs,
		Logger: logger,
	}
}

const keySep = "\x1f"

// matches reports whether r applies to a job of tenant and operation.
func (r Rule) matches(tenant, op string) bool {
	return matchField(r.Tenant, tenant) && matchField(r.Operation, op)
}

func matchField(want, got string) bool {
	switch want {
	case "":
		return true
	case "*":
		return got != ""
	default:
		return want == got
	}
}

// bucket names rule i's bucket for a job: "*" fields get one bucket per
// value, the others share the rule's.
func (r Rule) bucket(i int, tenant, op string) string {
	b := "rule" + strconv.Itoa(i+1)
	if r.Tenant == "*" {
		b += ":tenant=" + tenant
	}
	if r.Operation == "*" {
		b += ":op=" + op
	}
	return b
}

// rulesStore is a LimiterStore over every rule a key (tenant, operation)
// matches. A job that one rule refuses may already have taken tokens from
// the rules checked before it; the refusal wins and the job waits for the
// longest refusal.
type rulesStore struct {
	rules []Rule
	inner middleware.LimiterStore
}

func (s *rulesStore) Allow(ctx context.Context, key string, _ middleware.Limit, now time.Time) (bool, time.Duration, error) {
	tenant, op, _ := strings.Cut(key, keySep)
	allowed, wait := true, time.Duration(0)
	for i, r := range s.rules {
		if !r.matches(tenant, op) {
			continue
		}
		ok, w, err := s.inner.Allow(ctx, r.bucket(i, tenant, op), middleware.PerSecond(r.Rate, r.Burst), now)
		if err != nil {
			return false, 0, err
		}
		if !ok {
			allowed, wait = false, max(wait, w)
		}
	}
	return allowed, wait, nil
}
