//go:build linux

package main

import (
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// silentHost returns a loopback address whose connection attempts time out,
// like a host behind a firewall that drops packets: a socket listening with
// a backlog of 0 that never accepts, its queue filled by one connection, so
// that Linux drops further SYNs.
func silentHost(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
	filler, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { filler.Close() })
	if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
		c.Close()
		t.Skip("this kernel accepted a connection beyond the backlog: cannot simulate a silent host")
	}
	return addr
}

func TestPingDialTimeout(t *testing.T) {
	e := env{"REDIS_URL": "redis://" + silentHost(t) + "/0", "CONVEYOR_REDIS_DIAL_TIMEOUT": "500ms"}
	r := mustRun(t, exitFail, invocation{env: e}, "ping")
	for _, w := range []string{"i/o timeout", "timed out", "firewall allows outbound traffic"} {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr does not contain %q:\n%s", w, r.stderr)
		}
	}
}
