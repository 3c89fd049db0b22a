package config

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/conveyor-jobs/conveyor/broker/redis"
)

// validate checks the decoded values and returns every problem, each naming
// its key, value and source.
func (c *Config) validate() error {
	var errs []error
	bad := func(key string, value any, format string, args ...any) {
		errs = append(errs, &Error{Key: key, Value: displayValue(key, fmt.Sprint(value)),
			Source: c.Source(key), Err: fmt.Errorf(format, args...)})
	}
	oneOf := func(key, value string, allowed ...string) {
		if !slices.Contains(allowed, value) {
			bad(key, value, "must be one of %s", strings.Join(allowed, ", "))
		}
	}

	tlsErrs := tlsErrors(redis.CheckTLS(c.Redis.URL, c.tlsOptions()))
	oneOf("backend", c.Backend, BackendRedis, BackendMemory)
	if c.Backend == BackendRedis {
		if err := CheckURL(c.Redis.URL); err != nil {
			errs = append(errs, &Error{Key: "redis.url", Value: displayValue("redis.url", c.Redis.URL),
				Source: c.Source("redis.url"), Err: err})
		} else {
			for _, e := range tlsErrs {
				if e.Problem == redis.TLSWithoutRediss {
					errs = append(errs, c.tlsError(e))
				}
			}
		}
	}
	if strings.ContainsAny(c.Redis.Namespace, "{} \t\n") || c.Redis.Namespace == "" {
		bad("redis.namespace", c.Redis.Namespace, "must be non-empty, without spaces or braces")
	}
	if strings.TrimSpace(c.Redis.Group) == "" {
		bad("redis.group", c.Redis.Group, "%v", errEmpty)
	}
	positive := func(key string, v int64) {
		if v <= 0 {
			bad(key, c.valueOf(key), "must be positive")
		}
	}
	notNegative := func(key string, v int64) {
		if v < 0 {
			bad(key, c.valueOf(key), "must not be negative")
		}
	}
	positive("redis.lease", int64(c.Redis.Lease))
	positive("redis.max_deliveries", int64(c.Redis.MaxDeliveries))
	positive("redis.dial_timeout", int64(c.Redis.DialTimeout))
	if r := c.Redis.ResultRetention; r < time.Millisecond || r > redis.MaxResultRetention {
		bad("redis.result_retention", c.valueOf("redis.result_retention"), "must be between 1ms and %v", redis.MaxResultRetention)
	}

	for _, t := range c.Worker.Topics {
		if strings.TrimSpace(t) == "" || strings.ContainsAny(t, "{} \t\n") {
			bad("worker.topics", c.valueOf("worker.topics"), "topic %q must be non-empty, without spaces or braces", t)
		}
	}
	positive("worker.concurrency", int64(c.Worker.Concurrency))
	notNegative("worker.shutdown_timeout", int64(c.Worker.ShutdownTimeout))
	notNegative("worker.handler_timeout", int64(c.Worker.HandlerTimeout))

	positive("retry.max_attempts", int64(c.Retry.MaxAttempts))
	if c.Retry.MaxAttempts > 1 && len(c.Retry.Schedule) == 0 {
		bad("retry.schedule", "", "must list at least one delay when retry.max_attempts is above 1")
	}
	for _, d := range c.Retry.Schedule {
		if d <= 0 {
			bad("retry.schedule", c.valueOf("retry.schedule"), "delay %v must be positive", d)
		}
	}
	if c.Retry.Jitter < 0 || c.Retry.Jitter > 1 {
		bad("retry.jitter", c.Retry.Jitter, "must be between 0 and 1")
	}

	for i, r := range c.RateLimit.Rules {
		if r.Rate <= 0 {
			bad("ratelimit.rules", c.valueOf("ratelimit.rules"), "rule %d: rate must be positive (jobs per second)", i+1)
		}
		if r.Burst < 1 {
			bad("ratelimit.rules", c.valueOf("ratelimit.rules"), "rule %d: burst must be at least 1", i+1)
		}
	}

	notNegative("breaker.failures", int64(c.Breaker.Failures))
	if c.Breaker.Failures > 0 {
		positive("breaker.timeout", int64(c.Breaker.Timeout))
	}

	if c.Metrics.Addr != "" {
		if _, port, err := net.SplitHostPort(c.Metrics.Addr); err != nil || port == "" {
			bad("metrics.addr", c.Metrics.Addr, "must be host:port (such as 127.0.0.1:9090 or :9090), or empty to disable")
		}
	}
	oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	oneOf("log.format", c.Log.Format, "text", "json")

	for _, e := range tlsErrs {
		if e.Problem != redis.TLSWithoutRediss {
			errs = append(errs, c.tlsError(e))
		}
	}
	return errors.Join(errs...)
}
