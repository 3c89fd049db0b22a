// Package redisstore shares rate-limit buckets between workers through Redis:
// a [middleware.LimiterStore] implementing GCRA (the generic cell rate
// algorithm, a token bucket stored as one timestamp) in one Lua script.
//
//	store, err := redisstore.New(rdb, &redisstore.Options{Namespace: "conveyor"})
//	if err != nil { … }
//	mux.Use(middleware.RateLimit(&middleware.RateLimitOptions{
//		Key:   middleware.ByTenant(),
//		Limit: middleware.PerSecond(5, 10),
//		Store: store,
//	}))
//
// Every worker pointed at the same Redis and namespace draws from the same
// buckets, so a limit of 5 jobs per second per tenant holds for the whole
// fleet, not per process.
//
// # Keys
//
// The bucket of key k is the string key "<namespace>:rl:{<k>}", holding the
// bucket's theoretical arrival time in microseconds. The hash tag keeps one
// bucket in one Redis Cluster slot; the key expires (PEXPIRE) once the bucket
// has refilled, so idle tenants cost no memory.
//
// # Clock
//
// The script reads the Redis server's clock (TIME), not the workers': the
// workers' clocks may disagree, Redis's is one clock for all of them. The
// now argument of [Store.Allow] is therefore ignored.
package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/middleware"
)

// DefaultNamespace is the namespace used when Options.Namespace is empty; it
// is the Redis broker's default too.
const DefaultNamespace = "conveyor"

// gcra takes one token from a bucket; see the header in the script.
var gcra = redis.NewScript(`
-- GCRA: take one token from a bucket.
-- KEYS[1]  the bucket "<ns>:rl:{<key>}": its theoretical arrival time (TAT)
--          in microseconds of Redis server time, a decimal string.
-- ARGV[1]  emission interval in microseconds (1e6 / rate; may be fractional).
-- ARGV[2]  burst, at least 1.
-- Returns  {1, 0} when the token was taken; {0, wait} when it was not, wait
--          being the microseconds until one is due.
-- The clock is the server's TIME, one clock for every worker (Redis < 5
-- needs effects replication for that, hence replicate_commands). The key
-- expires when the bucket has refilled to its burst, which loses nothing.
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then
  tat = now
end
local new_tat = tat + interval
local allow_at = new_tat - interval * burst
if allow_at > now then
  return {0, math.ceil(allow_at - now)}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, 0}
`)

// Options configures a [Store]. The zero value is usable.
type Options struct {
	// Namespace prefixes every key; empty means [DefaultNamespace]. It must
	// not contain '{' or '}', which would change the hash slot.
	Namespace string
}

// Store is a distributed [middleware.LimiterStore]. It is safe for concurrent
// use; it holds no state besides the client.
type Store struct {
	rdb redis.UniversalClient
	ns  string
}

var _ middleware.LimiterStore = (*Store)(nil)

// New returns a Store using rdb, which may be a single client, a Sentinel
// failover client or a Cluster client. opts may be nil.
func New(rdb redis.UniversalClient, opts *Options) (*Store, error) {
	if rdb == nil {
		return nil, errors.New("conveyor/redisstore: nil client")
	}
	ns := DefaultNamespace
	if opts != nil && opts.Namespace != "" {
		ns = opts.Namespace
	}
	if strings.ContainsAny(ns, "{}") {
		return nil, fmt.Errorf("conveyor/redisstore: namespace %q must not contain '{' or '}'", ns)
	}
	return &Store{rdb: rdb, ns: ns}, nil
}

// Key returns the Redis key holding the bucket of key: "<ns>:rl:{<key>}".
func (s *Store) Key(key string) string {
	return s.ns + ":rl:{" + key + "}"
}

// Allow takes one token from key's bucket in one round trip (one Lua script).
// It ignores now: the clock is the Redis server's.
func (s *Store) Allow(ctx context.Context, key string, limit middleware.Limit, _ time.Time) (bool, time.Duration, error) {
	if limit.Unlimited() {
		return true, 0, nil
	}
	interval := 1e6 / limit.Rate // microseconds
	burst := max(limit.Burst, 1)
	res, err := gcra.Run(ctx, s.rdb, []string{s.Key(key)},
		strconv.FormatFloat(interval, 'f', 3, 64), burst).Int64Slice()
	if err != nil {
		return false, 0, fmt.Errorf("conveyor/redisstore: rate limit %q: %w", key, err)
	}
	if len(res) != 2 {
		return false, 0, fmt.Errorf("conveyor/redisstore: rate limit %q: unexpected reply %v", key, res)
	}
	if res[0] == 1 {
		return true, 0, nil
	}
	return false, time.Duration(res[1]) * time.Microsecond, nil
}
