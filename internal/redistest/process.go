package redistest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// proc is a redis-server child process with its own data directory. Every launch gets a
// fresh port unless a previous one is free again; a launch that loses the race for a port
// is retried on another.
type proc struct {
	bin  string
	dir  string
	args []string // extra arguments after the harness's own
	// pick reserves the ports of one launch; ports[0] is the plain --port, which the
	// readiness check pings. nil means one free port.
	pick func() ([]int, error)
	// portArgs returns arguments for ports[1:] (e.g. --tls-port). nil: none.
	portArgs func(ports []int) []string

	mu     sync.Mutex
	ports  []int
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
}

// redisServer returns the path of redis-server on PATH, or an unavailable error.
func redisServer() (string, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", unavailable("redis-server not on PATH")
	}
	return bin, nil
}

var versionCache sync.Map // binary path -> version string

// serverVersion returns "7.0.15" for the binary, or "" if it cannot tell.
func serverVersion(bin string) string {
	if v, ok := versionCache.Load(bin); ok {
		return v.(string)
	}
	out, _ := exec.Command(bin, "--version").Output()
	v := ""
	for _, f := range strings.Fields(string(out)) {
		if rest, ok := strings.CutPrefix(f, "v="); ok {
			v = rest
		}
	}
	versionCache.Store(bin, v)
	return v
}

func startProcess(t testing.TB, cfg *config) (*Server, string, error) {
	t.Helper()
	bin, err := redisServer()
	if err != nil {
		return nil, "", err
	}
	p := &proc{bin: bin, dir: t.TempDir(), args: cfg.serverArgs()}
	addr, err := p.launch()
	if err != nil {
		return nil, "", err
	}
	t.Cleanup(func() { p.halt(true) })
	srv := &Server{b: p, addr: addr}
	return srv, fmt.Sprintf("redis-server %s process at %s", serverVersion(bin), addr), nil
}

// launch starts the server, on its previous ports if it had some, and waits for PING.
func (p *proc) launch() (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return "", errors.New("the server is already running: Stop it first")
	}
	const tries = 5
	var last error
	for i := range tries {
		ports := p.ports
		if ports == nil || i > 0 {
			pick := p.pick
			if pick == nil {
				pick = func() ([]int, error) { port, err := freePort(); return []int{port}, err }
			}
			var err error
			if ports, err = pick(); err != nil {
				return "", err
			}
		}
		addr, err := p.launchOn(ports)
		if err == nil {
			p.ports = ports
			return addr, nil
		}
		last = err
		if !errors.Is(err, errPortInUse) {
			break
		}
	}
	return "", last
}

var errPortInUse = errors.New("port in use")

func (p *proc) launchOn(ports []int) (string, error) {
	port := ports[0]
	logPath := filepath.Join(p.dir, "redis.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return "", err
	}
	defer logf.Close() // the child keeps its own descriptor
	before, _ := logf.Seek(0, 2)
	args := append([]string{
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--dir", p.dir,
		"--save", "",
		"--appendonly", "no",
		"--protected-mode", "no",
		"--daemonize", "no",
		"--logfile", "",
	}, p.args...)
	if p.portArgs != nil {
		args = append(args, p.portArgs(ports)...)
	}
	cmd := exec.Command(p.bin, args...)
	cmd.Dir = p.dir
	cmd.Stdout, cmd.Stderr = logf, logf // *os.File: no copying goroutines
	cmd.SysProcAttr = childAttr()       // dies with the test binary where the OS allows
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start %s: %w", p.bin, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }() // joined by halt
	p.cmd, p.exited = cmd, exited

	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	// Ready only when our own log says so: if another server grabbed the port first,
	// it would answer PING while ours dies of "Address already in use".
	ready := func() bool { return bytes.Contains(readFrom(logPath, before), []byte("Ready to accept connections")) }
	if err := waitPing(addr, startTimeout, exited, ready); err != nil {
		p.haltLocked(true)
		out := readFrom(logPath, before)
		if bytes.Contains(out, []byte("Address already in use")) {
			return "", fmt.Errorf("%w: %v", errPortInUse, ports)
		}
		return "", fmt.Errorf("redis-server on ports %v: %v; log:\n%s", ports, err, tail(out, 20))
	}
	return addr, nil
}

// stop implements backend.
func (p *proc) stop(t testing.TB, kill bool) {
	t.Helper()
	p.halt(kill)
}

// start implements backend.
func (p *proc) start(t testing.TB) string {
	t.Helper()
	addr, err := p.launch()
	if err != nil {
		t.Fatalf("redistest: restart: %v", err)
	}
	return addr
}

func (p *proc) halt(kill bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.haltLocked(kill)
}

// haltLocked stops the process, SIGTERM first unless kill, SIGKILL after 10 s, and waits.
func (p *proc) haltLocked(kill bool) {
	if p.cmd == nil {
		return
	}
	sig := syscall.SIGTERM
	if kill {
		sig = syscall.SIGKILL
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	p.cmd, p.exited = nil, nil
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func readFrom(path string, off int64) []byte {
	b, _ := os.ReadFile(path)
	if off > int64(len(b)) {
		off = 0
	}
	return b[off:]
}

func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
