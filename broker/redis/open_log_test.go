package redis_test

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/broker/redis"
	"github.com/conveyor-jobs/conveyor/internal/logtest"
	"github.com/conveyor-jobs/conveyor/internal/redistest"
)

// TestGoRedisLinesReachTheBrokerLogger opens a broker on a port nobody
// listens on: go-redis's own line about the failed dial lands in the
// broker's logger, at debug level, instead of on stderr.
func TestGoRedisLinesReachTheBrokerLogger(t *testing.T) {
	t.Parallel()
	var logs logtest.Buffer
	logger := logs.TextLogger(&slog.HandlerOptions{Level: slog.LevelDebug})
	if b, err := redis.Open("redis://127.0.0.1:1?dial_timeout=1s", &redis.Options{Logger: logger}); err == nil {
		b.Close()
		t.Fatal("Open of a closed port succeeded")
	}
	out := logs.String()
	if !strings.Contains(out, "level=DEBUG") || !strings.Contains(out, "conveyor/redis: go-redis: connection pool: failed to dial") {
		t.Fatalf("go-redis's dial failure not in the broker's logger:\n%s", out)
	}
}

// TestNewRefusesTLSOptions: New uses its client as it is, so TLS options,
// which it cannot apply, are an error rather than silently ignored.
func TestNewRefusesTLSOptions(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	var client goredis.UniversalClient = srv.Client(t)
	_, err := redis.New(client, &redis.Options{TLS: &redis.TLSOptions{CAFile: "ca.pem"}})
	if !errors.Is(err, redis.ErrTLSWithClient) || !strings.Contains(err.Error(), "configure TLS on that client") {
		t.Fatalf("New with TLS options: %v, want ErrTLSWithClient", err)
	}
	b, err := redis.New(client, &redis.Options{Namespace: srv.Namespace})
	if err != nil {
		t.Fatalf("New without TLS options: %v", err)
	}
	_ = b.Close()
}
