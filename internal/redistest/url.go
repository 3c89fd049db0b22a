package redistest

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// startURL connects to REDIS_URL. The test is isolated only by its namespace: the
// database is never flushed; when the test ends the namespace's own keys are deleted.
func startURL(t testing.TB, cfg *config, ns string) (*Server, string, error) {
	t.Helper()
	raw := os.Getenv(EnvURL)
	if raw == "" {
		return nil, "", unavailable("%s unset", EnvURL)
	}
	if cfg.needsOwnServer() {
		return nil, "", unavailable("%s cannot honour WithAOF, Restartable, WithArgs or WithPassword", EnvURL)
	}
	opts, err := goredis.ParseURL(raw)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %v", EnvURL, err) // never echo the URL: it may hold a password
	}
	rdb := goredis.NewClient(opts)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		_ = rdb.Close()
		return nil, "", fmt.Errorf("%s: PING: %v", EnvURL, err)
	}
	t.Cleanup(func() {
		defer rdb.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := deleteNamespace(ctx, rdb, ns); err != nil {
			t.Logf("redistest: delete namespace %s: %v", ns, err)
		}
	})
	return &Server{opts: opts, rawURL: raw, addr: opts.Addr}, "the Redis at " + EnvURL + " (" + opts.Addr + ")", nil
}

// deleteNamespace removes every key starting with ns.
func deleteNamespace(ctx context.Context, rdb *goredis.Client, ns string) error {
	iter := rdb.Scan(ctx, 0, ns+"*", 500).Iterator()
	var batch []string
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 500 {
			if err := rdb.Unlink(ctx, batch...).Err(); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	if err := iter.Err(); err != nil {
		return err
	}
	if len(batch) > 0 {
		return rdb.Unlink(ctx, batch...).Err()
	}
	return nil
}
