package redis_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/redis"
	"github.com/conveyor-jobs/conveyor/internal/redistest"
)

// startSentinel starts a Redis Sentinel monitoring master as "mymaster" and
// returns its address.
func startSentinel(t *testing.T, master string) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not on PATH")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	host, mport, _ := net.SplitHostPort(master)
	dir := t.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	body := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor mymaster %s %s 1\n", port, dir, host, mport)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, conf, "--sentinel")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	sc := goredis.NewSentinelClient(&goredis.Options{Addr: addr})
	defer sc.Close()
	eventually(t, "sentinel to know the master", func() bool {
		got, err := sc.GetMasterAddrByName(context.Background(), "mymaster").Result()
		return err == nil && len(got) == 2
	})
	return addr
}

func TestOpenSentinel(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	addr := startSentinel(t, srv.Addr())
	b, err := redis.Open("redis://"+addr+"?master_name=mymaster", &redis.Options{Namespace: srv.Namespace, Block: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	if _, err := b.Publish(ctx, broker.Message{Topic: "t", Payload: []byte("via sentinel")}); err != nil {
		t.Fatal(err)
	}
	// The job is on the master the sentinel points to.
	if n := xlen(t, srv.Client(t), srv.Namespace+":{t}:stream"); n != 1 {
		t.Fatalf("master stream length %d", n)
	}
	ds := fetchN(t, b, []string{"t"}, 1)
	if err := b.Ack(ctx, ds...); err != nil {
		t.Fatal(err)
	}
}
