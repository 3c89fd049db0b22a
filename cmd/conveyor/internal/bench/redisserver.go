package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// throwaway is a redis-server process Run started and must stop.
type throwaway struct {
	cmd  *exec.Cmd
	dir  string
	url  string
	done chan error
}

// ErrNoRedis is returned by [Run] when a scenario needs Redis, no RedisURL
// was given and no redis-server is on PATH.
var ErrNoRedis = errors.New("bench: no Redis: pass --redis-url (e.g. --redis-url \"$REDIS_URL\"), or install redis-server so that a throwaway one can be started")

// startRedis starts redis-server from PATH on a free loopback port, with no
// persistence, and waits until it answers PING.
func startRedis(ctx context.Context) (*throwaway, error) {
	bin, err := redisServerPath()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "conveyor-bench-redis-")
	if err != nil {
		return nil, fmt.Errorf("bench: throwaway redis-server: %w", err)
	}
	var lastErr error
	for range 3 { // a port found free can be taken before redis binds it
		port, err := freePort()
		if err != nil {
			lastErr = err
			continue
		}
		t, err := launchRedis(ctx, bin, dir, port)
		if err == nil {
			return t, nil
		}
		lastErr = err
	}
	_ = os.RemoveAll(dir)
	return nil, fmt.Errorf("bench: throwaway redis-server: %w", lastErr)
}

// redisServerPath returns redis-server's path on PATH, or ErrNoRedis.
func redisServerPath() (string, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", ErrNoRedis
	}
	return bin, nil
}

func launchRedis(ctx context.Context, bin, dir string, port int, extra ...string) (*throwaway, error) {
	args := append([]string{
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir,
		"--daemonize", "no", "--logfile", dir + "/redis.log"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	t := &throwaway{cmd: cmd, dir: dir, url: "redis://127.0.0.1:" + strconv.Itoa(port), done: make(chan error, 1)}
	go func() { t.done <- cmd.Wait() }()
	rdb := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port), MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer rdb.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-t.done:
			t.done <- err
			log, _ := os.ReadFile(dir + "/redis.log")
			return nil, fmt.Errorf("redis-server exited (%v): %s", err, lastLine(string(log)))
		default:
		}
		pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		err := rdb.Ping(pctx).Err()
		cancel()
		if err == nil {
			return t, nil
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			t.stop()
			return nil, fmt.Errorf("redis-server on port %d did not answer PING: %v", port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop terminates the server, waits for it and removes its directory.
func (t *throwaway) stop() {
	_ = t.cmd.Process.Signal(os.Interrupt)
	select {
	case <-t.done:
	case <-time.After(5 * time.Second):
		_ = t.cmd.Process.Kill()
		<-t.done
	}
	_ = os.RemoveAll(t.dir)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// redisVersion returns the server's redis_version from INFO server.
func redisVersion(ctx context.Context, rdb goredis.UniversalClient) string {
	info, err := rdb.Info(ctx, "server").Result()
	if err != nil {
		return ""
	}
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "redis_version:"); ok {
			return v
		}
	}
	return ""
}
