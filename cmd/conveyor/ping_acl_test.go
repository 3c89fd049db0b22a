package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/conveyor-jobs/conveyor/broker/redis/redistest"
)

// leastPrivilege is the ACL docs/redis.md documents as
// enough for every broker operation, the server's version included.
var leastPrivilege = []string{
	"ping", "hello", "auth", "select",
	"xadd", "xreadgroup", "xack", "xdel", "xautoclaim", "xclaim", "xpending", "xgroup|create", "xgroup|delconsumer",
	"xinfo|groups", "xinfo|stream", "xinfo|consumers", "xlen", "xrange", "xrevrange", "xtrim",
	"zadd", "zrange", "zrangebyscore", "zrem", "zcard",
	"sadd", "smembers", "scan",
	"evalsha", "eval",
}

// TestPingACLUser checks that ping shows the server's version to a Redis
// user granted only the documented least-privilege commands (INFO is not
// among them).
func TestPingACLUser(t *testing.T) {
	srv := redistest.Start(t, redistest.Restartable()) // own server: ACL SETUSER must not touch a shared one
	admin := srv.Client(t)
	setUser := func(user, pass string, commands []string) {
		t.Helper()
		args := []any{"ACL", "SETUSER", user, "reset", "on", ">" + pass, "~" + srv.Namespace + ":*", "-@all"}
		for _, c := range commands {
			args = append(args, "+"+c)
		}
		if err := admin.Do(context.Background(), args...).Err(); err != nil {
			t.Fatalf("ACL SETUSER: %v", err)
		}
	}
	const pass = "acl-Passw0rd-9"
	setUser("least", pass, leastPrivilege)
	e := env{"REDIS_URL": fmt.Sprintf("redis://least:%s@%s/0", pass, srv.Addr()), "REDIS_NAMESPACE": srv.Namespace}

	r := mustRun(t, exitOK, invocation{env: e}, "ping")
	if !regexp.MustCompile(`(?m)^server +Redis \d+\.\d+\.\d+ \(standalone\)$`).MatchString(r.stdout) {
		t.Errorf("ping as the least-privilege user shows no version:\n%s", r.stdout)
	}
	r = mustRun(t, exitOK, invocation{env: e}, "ping", "--json")
	var res pingResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^\d+\.\d+\.\d+$`).MatchString(res.Version) || res.Mode != "standalone" {
		t.Errorf("ping --json as the least-privilege user: server_version %q, server_mode %q", res.Version, res.Mode)
	}
	if strings.Contains(r.stdout+r.stderr, pass) {
		t.Errorf("ping leaks the password:\n%s%s", r.stdout, r.stderr)
	}
}

// TestPingVersionUnknown checks that ping against a server that answers PING
// but refuses HELLO (every command but PING) says the version is unknown
// and why, instead of printing nothing after "Redis".
func TestPingVersionUnknown(t *testing.T) {
	addr := pingOnly(t)
	e := env{"REDIS_URL": "redis://" + addr + "/0"}
	r := mustRun(t, exitOK, invocation{env: e}, "ping")
	if !regexp.MustCompile(`(?m)^server +Redis unknown \(.*HELLO.*\)$`).MatchString(r.stdout) {
		t.Errorf("ping does not say why the version is unknown:\n%s", r.stdout)
	}
	r = mustRun(t, exitOK, invocation{env: e}, "ping", "--json")
	var res pingResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatal(err)
	}
	if res.Version != "" || !strings.Contains(res.VersionErr, "HELLO") {
		t.Errorf("ping --json: server_version %q, server_version_error %q; want no version and the reason", res.Version, res.VersionErr)
	}
}

// pingOnly starts a server speaking RESP that answers PING with PONG and
// every other command with an error naming it, and returns its address.
func pingOnly(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				servePingOnly(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// servePingOnly answers the commands read from c until it fails.
func servePingOnly(c net.Conn) {
	r := bufio.NewReader(c)
	for {
		args, err := readCommand(r)
		if err != nil {
			return
		}
		reply := "+PONG\r\n"
		if len(args) == 0 || !strings.EqualFold(args[0], "PING") {
			reply = fmt.Sprintf("-ERR unknown command '%s'\r\n", strings.Join(args, " "))
		}
		if _, err := io.WriteString(c, reply); err != nil {
			return
		}
	}
}

// readCommand reads one RESP array of bulk strings.
func readCommand(r *bufio.Reader) ([]string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "*")))
	if err != nil {
		return nil, err
	}
	args := make([]string, n)
	for i := range args {
		if line, err = r.ReadString('\n'); err != nil {
			return nil, err
		}
		size, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "$")))
		if err != nil {
			return nil, err
		}
		buf := make([]byte, size+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		args[i] = string(buf[:size])
	}
	return args, nil
}
