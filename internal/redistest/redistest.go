package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Paths Start can take, as reported by Server.Path and accepted by CONVEYOR_REDIS_HARNESS.
const (
	PathContainer = "container" // testcontainers-go, image from CONVEYOR_REDIS_IMAGE
	PathProcess   = "process"   // redis-server on PATH, started on a free loopback port
	PathURL       = "url"       // the Redis at REDIS_URL, isolated by namespace only
)

// Environment variables read by the harness.
const (
	EnvImage   = "CONVEYOR_REDIS_IMAGE"   // container image; default DefaultImage
	EnvHarness = "CONVEYOR_REDIS_HARNESS" // force one path: container, process or url
	EnvURL     = "REDIS_URL"              // an existing Redis, used when nothing else is
)

// DefaultImage is the container image used when CONVEYOR_REDIS_IMAGE is unset.
const DefaultImage = "redis:7"

// NoRedisMarker starts the one line with which a test is skipped (or, when CI is "true",
// failed) because no Redis could be found. CI scripts may grep for it.
const NoRedisMarker = "redistest: no Redis available"

// startTimeout bounds how long one server may take to answer PING.
const startTimeout = 20 * time.Second

// errUnavailable marks a path that cannot be used here (no engine, no binary, no URL);
// Start then tries the next one. Any other error means the path was usable but broke,
// and fails the test.
var errUnavailable = errors.New("unavailable")

func unavailable(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUnavailable, fmt.Sprintf(format, args...))
}

// Option configures Start. Options are built only by this package's functions.
type Option func(*config)

type config struct {
	aof         bool
	restartable bool
	password    string
	args        []string
}

// needsOwnServer reports whether the options need a server the harness controls, which
// rules out the REDIS_URL path.
func (c *config) needsOwnServer() bool {
	return c.aof || c.restartable || c.password != "" || len(c.args) > 0
}

// serverArgs returns the redis-server arguments for the options, after the harness's own.
func (c *config) serverArgs() []string {
	var args []string
	if c.aof {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	}
	if c.password != "" {
		args = append(args, "--requirepass", c.password)
	}
	return append(args, c.args...)
}

// WithAOF turns on the append-only file with appendfsync always, so that every
// acknowledged write survives Stop, Kill and Start. It implies Restartable.
func WithAOF() Option { return func(c *config) { c.aof, c.restartable = true, true } }

// Restartable asks for a server that can be stopped and started again: a container or a
// process, never REDIS_URL.
func Restartable() Option { return func(c *config) { c.restartable = true } }

// WithArgs appends redis-server arguments, e.g. WithArgs("--maxmemory", "10mb"). They
// come after the harness's own and so override them. File paths are read by the server:
// inside the container on the container path. Not available with REDIS_URL.
func WithArgs(args ...string) Option {
	return func(c *config) { c.args = append(c.args, args...) }
}

// WithPassword makes the server require a password; URL and Client carry it.
func WithPassword(password string) Option { return func(c *config) { c.password = password } }

// Server is a Redis for one test. It is stopped and removed when the test ends.
// Its methods are safe for concurrent use.
type Server struct {
	// Namespace is a fresh random key prefix ("test-<16 hex digits>"). Tests must prefix
	// every key with it: on the REDIS_URL path it is the only isolation there is.
	Namespace string
	// Path says where the server came from: PathContainer, PathProcess or PathURL.
	Path string

	password string
	opts     *goredis.Options // url path: parsed REDIS_URL
	rawURL   string           // url path: REDIS_URL as given
	b        backend          // nil on the url path

	mu   sync.Mutex
	addr string
}

// backend is a server the harness owns and can restart.
type backend interface {
	// stop stops the server; kill skips the graceful shutdown.
	stop(t testing.TB, kill bool)
	// start starts a stopped server and returns its address once it answers PING.
	start(t testing.TB) string
}

// Addr returns the server's current host:port. It may change after Start.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// URL returns the current redis:// URL, with the password if there is one. It may change
// after Start: read it again after a restart.
func (s *Server) URL() string {
	if s.opts != nil { // url path: hand back what the user gave us
		return s.rawURL
	}
	u := "redis://"
	if s.password != "" {
		u += ":" + urlEscape(s.password) + "@"
	}
	return u + s.Addr()
}

func urlEscape(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// Options returns go-redis options for the server. For a server the harness owns, their
// Dialer dials the server's current address, so a client built from them keeps working
// across Stop and Start.
func (s *Server) Options() *goredis.Options {
	if s.opts != nil {
		o := *s.opts
		return &o
	}
	var d net.Dialer
	return &goredis.Options{
		Addr:     s.Addr(),
		Password: s.password,
		Dialer: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, s.Addr())
		},
	}
}

// Client returns a new client for the server, closed when the test ends. It follows the
// server across restarts (see Options).
func (s *Server) Client(t testing.TB) *goredis.Client {
	t.Helper()
	rdb := goredis.NewClient(s.Options())
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// Key returns Namespace + ":" + parts joined by ":", a key inside the test's namespace.
func (s *Server) Key(parts ...string) string {
	return strings.Join(append([]string{s.Namespace}, parts...), ":")
}

func (s *Server) backend(t testing.TB, op string) backend {
	t.Helper()
	if s.b == nil {
		t.Fatalf("redistest: %s: the %s path cannot be restarted; ask Start for Restartable()", op, s.Path)
	}
	return s.b
}

// Stop shuts the server down gracefully (SHUTDOWN semantics: with AOF, nothing acknowledged
// is lost) and waits until it is gone. It fails the test on the REDIS_URL path.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	s.backend(t, "Stop").stop(t, false)
}

// Kill stops the server abruptly (SIGKILL), as a crash would. With WithAOF every
// acknowledged write is still there after Start.
func (s *Server) Kill(t testing.TB) {
	t.Helper()
	s.backend(t, "Kill").stop(t, true)
}

// Start starts a stopped server again with the same data directory, and returns once it
// answers PING. The address may change: read Addr and URL again.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	addr := s.backend(t, "Start").start(t)
	s.mu.Lock()
	s.addr = addr
	s.mu.Unlock()
}

// Restart is Stop followed by Start.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop(t)
	s.Start(t)
}

// Start returns a Redis for the test, found as the package documentation describes, and
// logs which one. It has no container path: see StartWith. It skips the test (fails it
// when CI is "true") when there is none, and fails it when CONVEYOR_REDIS_HARNESS names a
// path that is not available.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	return StartWith(t, nil, opts...)
}

// StartWith is Start with the container path served by container; with a nil container
// that path is unavailable.
func StartWith(t testing.TB, container Container, opts ...Option) *Server {
	t.Helper()
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	forced := os.Getenv(EnvHarness)
	switch forced {
	case "", PathContainer, PathProcess, PathURL:
	default:
		t.Fatalf("redistest: %s=%q: want %s, %s or %s", EnvHarness, forced, PathContainer, PathProcess, PathURL)
	}
	ns := newNamespace(t)
	var why []string
	for _, path := range []string{PathContainer, PathProcess, PathURL} {
		if forced != "" && forced != path {
			continue
		}
		var (
			srv  *Server
			desc string
			err  error
		)
		switch path {
		case PathContainer:
			srv, desc, err = startContainer(t, container, &cfg)
		case PathProcess:
			srv, desc, err = startProcess(t, &cfg)
		case PathURL:
			srv, desc, err = startURL(t, &cfg, ns)
		}
		switch {
		case err == nil:
			srv.Namespace, srv.Path, srv.password = ns, path, cfg.password
			if len(why) > 0 {
				desc += " (" + strings.Join(why, "; ") + ")"
			}
			t.Logf("redistest: using %s, namespace %s", desc, ns)
			return srv
		case forced != "":
			t.Fatalf("redistest: %s=%s, but that path failed: %v", EnvHarness, forced, err)
		case !errors.Is(err, errUnavailable):
			t.Fatalf("redistest: %s: %v", path, err)
		}
		why = append(why, path+": "+strings.TrimPrefix(err.Error(), errUnavailable.Error()+": "))
	}
	noRedis(t, "start Docker, install redis-server (apt-get install redis-server) or set REDIS_URL", why)
	return nil
}

// noRedis skips the test, or fails it when CI is "true", with one line.
func noRedis(t testing.TB, fix string, why []string) {
	t.Helper()
	msg := NoRedisMarker + ": " + fix
	if len(why) > 0 {
		msg += " (" + strings.Join(why, "; ") + ")"
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " [CI=true: failing instead of skipping]")
	}
	t.Skip(msg)
}

func newNamespace(t testing.TB) string {
	t.Helper()
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("redistest: namespace: %v", err)
	}
	return "test-" + hex.EncodeToString(b[:])
}

// waitPing polls addr with a raw PING until it answers +PONG (or -NOAUTH, which also
// means ready) and ready (if not nil) reports true, exited is closed, or the timeout
// passes.
func waitPing(addr string, timeout time.Duration, exited <-chan struct{}, ready func() bool) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		if exited != nil {
			select {
			case <-exited:
				return errExited
			default:
			}
		}
		ok, err := ping(addr)
		if ok && (ready == nil || ready()) {
			return nil
		}
		if ok {
			err = errors.New("PING answered, but the server has not logged that it is ready")
		}
		last = err
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer to PING at %s after %s: %v", addr, timeout, last)
		}
		time.Sleep(20 * time.Millisecond) // waiting for an external process: nothing to block on
	}
}

var errExited = errors.New("server exited")

// waitPingAny is waitPing for several candidate addresses of one server; it returns the
// first that answers.
func waitPingAny(addrs []string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		for _, a := range addrs {
			ok, err := ping(a)
			if ok {
				return a, nil
			}
			last = err
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no answer to PING at %s after %s: %v", strings.Join(addrs, " or "), timeout, last)
		}
		time.Sleep(20 * time.Millisecond) // waiting for an external process: nothing to block on
	}
}

func ping(addr string) (bool, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false, err
	}
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil {
		return false, err
	}
	reply := string(buf[:n])
	if strings.HasPrefix(reply, "+PONG") || strings.HasPrefix(reply, "-NOAUTH") {
		return true, nil
	}
	return false, fmt.Errorf("PING: %s", strings.TrimSpace(reply))
}
