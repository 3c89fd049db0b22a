package config

import (
	"reflect"
	"strings"
	"time"

	"github.com/conveyor-jobs/conveyor/broker/redis"
	"github.com/conveyor-jobs/conveyor/retry"
)

// Backends accepted by [Config.Backend].
const (
	BackendRedis  = "redis"
	BackendMemory = "memory"
)

// Config is conveyor's effective configuration, grouped by concern. Load
// returns one; the zero value is not useful, start from [Default].
//
// Every leaf field has a key (its mapstructure path, such as "redis.url") and
// an environment variable (the env tag, or CONVEYOR_ followed by the key in
// upper case with dots as underscores).
type Config struct {
	// Backend selects the broker: "redis" or "memory". Env QUEUE_BACKEND.
	Backend   string    `mapstructure:"backend" env:"QUEUE_BACKEND"`
	Redis     Redis     `mapstructure:"redis"`
	Worker    Worker    `mapstructure:"worker"`
	Retry     Retry     `mapstructure:"retry"`
	RateLimit RateLimit `mapstructure:"ratelimit"`
	Breaker   Breaker   `mapstructure:"breaker"`
	Metrics   Metrics   `mapstructure:"metrics"`
	Log       Log       `mapstructure:"log"`
	TLS       TLS       `mapstructure:"tls"`

	sources map[string]Source
}

// Redis configures the connection and the keys.
type Redis struct {
	// URL is redis://[user:password@]host:port/db, or rediss:// for TLS.
	// Special characters in the password must be URL-encoded.
	URL string `mapstructure:"url" env:"REDIS_URL"`
	// Namespace prefixes every key; producers and workers must agree on it.
	Namespace string `mapstructure:"namespace" env:"REDIS_NAMESPACE"`
	// Consumer names this worker in its consumer group. Empty means
	// hostname-pid.
	Consumer string `mapstructure:"consumer" env:"REDIS_CONSUMER"`
	// Group is the consumer group: one per application.
	Group string `mapstructure:"group"`
	// Lease is how long a fetched job stays with a worker without a
	// heartbeat before it is redelivered to another.
	Lease time.Duration `mapstructure:"lease"`
	// MaxDeliveries is the poison limit: a job delivered this many times in
	// a row with no outcome (its worker crashed or lost the lease each
	// time) is dead-lettered with reason max-deliveries. It counts crashes,
	// not attempts: a retried job starts a new count.
	MaxDeliveries int `mapstructure:"max_deliveries"`
	// DialTimeout bounds connecting to Redis.
	DialTimeout time.Duration `mapstructure:"dial_timeout"`
	// PublishCoalescing sends concurrent publishes together in pipelines
	// (a lone publish is sent at once). Default true; false sends each
	// publish as its own round trip.
	PublishCoalescing bool `mapstructure:"publish_coalescing"`
	// ResultRetention is how long the result of a job that succeeded with
	// one (job.SetResult) is kept for "conveyor job show" and
	// broker.JobReader.
	ResultRetention time.Duration `mapstructure:"result_retention"`
}

// Worker configures the server that runs handlers.
type Worker struct {
	// Topics the worker consumes.
	Topics []string `mapstructure:"topics"`
	// Concurrency is how many jobs run at once.
	Concurrency int `mapstructure:"concurrency"`
	// ShutdownTimeout is how long a stopping worker waits for in-flight jobs.
	ShutdownTimeout time.Duration `mapstructure:"shutdown_timeout"`
	// HandlerTimeout bounds one handler call; zero means no deadline.
	HandlerTimeout time.Duration `mapstructure:"handler_timeout"`
}

// Retry configures what happens to a job whose handler failed.
type Retry struct {
	// MaxAttempts is the most attempts a job gets, the first included,
	// before it is dead-lettered.
	MaxAttempts int `mapstructure:"max_attempts"`
	// Schedule is the delay before each retry: the first entry before the
	// second attempt, and so on; the last entry repeats.
	Schedule []time.Duration `mapstructure:"schedule"`
	// Jitter randomises each delay by up to this fraction (0 to 1).
	Jitter float64 `mapstructure:"jitter"`
}

// RateLimit configures token buckets per tenant and operation.
type RateLimit struct {
	// Rules are the limits; a job matching no rule is not limited.
	Rules []Rule `mapstructure:"rules"`
	// Distributed shares the buckets between workers through Redis instead
	// of keeping them in each process.
	Distributed bool `mapstructure:"distributed"`
}

// Rule is one token bucket. Tenant and Operation select the jobs it applies
// to; an empty field matches any value and "*" gives every value its own
// bucket.
type Rule struct {
	// Tenant matches the job's "tenant" header.
	Tenant string `mapstructure:"tenant" yaml:"tenant,omitempty" json:"tenant,omitempty"`
	// Operation matches the job's "operation" header, or its topic when
	// the header is not set.
	Operation string `mapstructure:"operation" yaml:"operation,omitempty" json:"operation,omitempty"`
	// Rate is the sustained number of jobs per second.
	Rate float64 `mapstructure:"rate" yaml:"rate" json:"rate"`
	// Burst is how many jobs may start at once above the rate.
	Burst int `mapstructure:"burst" yaml:"burst" json:"burst"`
}

// Breaker configures circuit breaking per topic.
type Breaker struct {
	// Failures is the number of consecutive failures that opens the circuit;
	// zero disables the breaker.
	Failures int `mapstructure:"failures"`
	// Timeout is how long an open circuit snoozes jobs before it lets one
	// through to test the handler again.
	Timeout time.Duration `mapstructure:"timeout"`
}

// Metrics configures the HTTP listener for /metrics, /healthz and /readyz.
type Metrics struct {
	// Addr is host:port to listen on; empty disables the listener.
	Addr string `mapstructure:"addr"`
}

// Log configures logging.
type Log struct {
	// Level is debug, info, warn or error.
	Level string `mapstructure:"level"`
	// Format is text or json.
	Format string `mapstructure:"format"`
}

// TLS configures certificates for rediss:// URLs.
type TLS struct {
	// CAFile is a PEM bundle of the CAs that sign the server's certificate;
	// empty means the system roots.
	CAFile string `mapstructure:"ca_file"`
	// CertFile and KeyFile are the client certificate and key, for servers
	// that require one.
	CertFile string `mapstructure:"cert_file"`
	KeyFile  string `mapstructure:"key_file"`
	// InsecureSkipVerify turns certificate verification off. Never in
	// production.
	InsecureSkipVerify bool `mapstructure:"insecure_skip_verify"`
}

// Default returns the built-in configuration.
func Default() *Config {
	return &Config{
		Backend: BackendRedis,
		Redis: Redis{
			URL:               "redis://localhost:6379/0",
			Namespace:         "conveyor",
			Group:             "conveyor",
			Lease:             30 * time.Second,
			MaxDeliveries:     3,
			DialTimeout:       5 * time.Second,
			PublishCoalescing: true,
			ResultRetention:   redis.DefaultResultRetention,
		},
		Worker: Worker{
			Concurrency:     10,
			ShutdownTimeout: 30 * time.Second,
		},
		Retry: Retry{
			MaxAttempts: retry.DefaultMaxAttempts,
			Schedule:    retry.DefaultSchedule(),
			Jitter:      retry.DefaultScheduleJitter,
		},
		Breaker: Breaker{Failures: 5, Timeout: 60 * time.Second},
		Metrics: Metrics{Addr: "127.0.0.1:9090"},
		Log:     Log{Level: "info", Format: "text"},
	}
}

// Source returns where the value of key came from. Keys are as listed by
// [Keys], for example "redis.url".
func (c *Config) Source(key string) Source {
	if s, ok := c.sources[key]; ok {
		return s
	}
	return Source{Kind: FromDefault}
}

// keyInfo describes one leaf of Config.
type keyInfo struct {
	key   string
	env   string
	index []int // reflect field index path from Config
	typ   reflect.Type
}

// keyTable lists the leaves of Config in declaration order. It is computed from
// the struct so that the list cannot drift from it.
var keyTable = buildKeys()

func buildKeys() []keyInfo {
	var out []keyInfo
	var walk func(t reflect.Type, prefix string, index []int)
	walk = func(t reflect.Type, prefix string, index []int) {
		for i := range t.NumField() {
			f := t.Field(i)
			name := f.Tag.Get("mapstructure")
			if !f.IsExported() || name == "" {
				continue
			}
			idx := append(append([]int(nil), index...), i)
			key := prefix + name
			if f.Type.Kind() == reflect.Struct {
				walk(f.Type, key+".", idx)
				continue
			}
			env := f.Tag.Get("env")
			if env == "" {
				env = "CONVEYOR_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
			}
			out = append(out, keyInfo{key: key, env: env, index: idx, typ: f.Type})
		}
	}
	walk(reflect.TypeFor[Config](), "", nil)
	return out
}

// Keys returns every configuration key, such as "redis.url", in the order
// of the Config struct.
func Keys() []string {
	out := make([]string, len(keyTable))
	for i, k := range keyTable {
		out[i] = k.key
	}
	return out
}

// EnvVar returns the environment variable that sets key, or "" for an
// unknown key.
func EnvVar(key string) string {
	if k := lookupKey(key); k != nil {
		return k.env
	}
	return ""
}

func lookupKey(key string) *keyInfo {
	for i := range keyTable {
		if keyTable[i].key == key {
			return &keyTable[i]
		}
	}
	return nil
}

// isSection reports whether key names a group of keys ("redis", …).
func isSection(key string) bool {
	for _, k := range keyTable {
		if strings.HasPrefix(k.key, key+".") {
			return true
		}
	}
	return false
}
