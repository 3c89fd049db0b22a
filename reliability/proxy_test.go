package reliability

import (
	"bytes"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// proxy is a TCP proxy between clients and Redis that the tests can cut: Cut
// closes every connection and refuses new ones (the listening socket is
// closed, so a dial gets "connection refused") until Restore. Repoint sends
// new connections to another upstream address, which keeps the address
// clients know stable across a Redis restart that changes the port.
//
// A proxy is safe for concurrent use; it is closed when the test ends and
// every goroutine it started is joined.
type proxy struct {
	t    testing.TB
	addr string // the address clients dial; stable for the proxy's life

	mu       sync.Mutex
	upstream string
	ln       net.Listener
	conns    map[net.Conn]struct{}
	cut      bool
	closed   bool
	accepted int // connections accepted while not cut, for tests of the proxy

	dropMatch []byte // see DropReplyOnce; nil when not armed
	dropped   int    // replies dropped

	wg sync.WaitGroup
}

// startProxy starts a proxy on a free loopback port forwarding to upstream.
func startProxy(t testing.TB, upstream string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy: listen: %v", err)
	}
	p := &proxy{t: t, addr: ln.Addr().String(), upstream: upstream, ln: ln, conns: map[net.Conn]struct{}{}}
	p.serve(ln)
	t.Cleanup(p.close)
	return p
}

// Addr returns the address clients should dial.
func (p *proxy) Addr() string { return p.addr }

// URL returns redis://<Addr>.
func (p *proxy) URL() string { return "redis://" + p.addr }

// Repoint sends connections accepted from now on to upstream.
func (p *proxy) Repoint(upstream string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.upstream = upstream
}

// Cut drops every open connection and refuses new ones until Restore.
func (p *proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut || p.closed {
		return
	}
	p.cut = true
	_ = p.ln.Close()
	for c := range p.conns {
		_ = c.Close()
	}
}

// Restore listens again on the same address after Cut.
func (p *proxy) Restore() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.cut || p.closed {
		return
	}
	var (
		ln  net.Listener
		err error
	)
	// The port was ours a moment ago; the kernel may need a moment to let go.
	for deadline := time.Now().Add(10 * time.Second); ; {
		ln, err = net.Listen("tcp", p.addr)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond) // waiting on the kernel: nothing to block on
	}
	if err != nil {
		p.t.Errorf("proxy: listen again on %s: %v", p.addr, err)
		return
	}
	p.cut = false
	p.ln = ln
	p.serve(ln)
}

// DropReplyOnce makes the proxy lose the reply of the next request that
// contains match: the request reaches Redis and runs, and instead of the
// reply the client sees its connection close.
func (p *proxy) DropReplyOnce(match string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dropMatch = []byte(match)
}

// Dropped returns how many replies DropReplyOnce made the proxy lose.
func (p *proxy) Dropped() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dropped
}

// armedBy reports whether request matches an armed DropReplyOnce, and
// disarms it if so.
func (p *proxy) armedBy(request []byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dropMatch == nil || !bytes.Contains(request, p.dropMatch) {
		return false
	}
	p.dropMatch = nil
	p.dropped++
	return true
}

// Accepted returns how many connections the proxy has accepted.
func (p *proxy) Accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

func (p *proxy) serve(ln net.Listener) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed by Cut or close
			}
			p.handle(c)
		}
	}()
}

// handle dials the upstream for the client connection c and copies both ways
// until either side closes.
func (p *proxy) handle(c net.Conn) {
	p.mu.Lock()
	if p.cut || p.closed {
		p.mu.Unlock()
		_ = c.Close()
		return
	}
	upstream := p.upstream
	p.conns[c] = struct{}{}
	p.accepted++
	p.mu.Unlock()

	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer p.forget(c)
		u, err := net.DialTimeout("tcp", upstream, 2*time.Second)
		if err != nil {
			_ = c.Close()
			return
		}
		p.mu.Lock()
		if p.cut || p.closed {
			p.mu.Unlock()
			_ = u.Close()
			_ = c.Close()
			return
		}
		p.conns[u] = struct{}{}
		p.mu.Unlock()
		defer p.forget(u)

		// drop is set when a request on this connection armed
		// DropReplyOnce: the next reply closes the connection instead.
		var drop atomic.Bool
		done := make(chan struct{})
		go func() {
			defer close(done)
			relay(u, c, func(b []byte) bool {
				if p.armedBy(b) {
					drop.Store(true)
				}
				return true
			})
		}()
		relay(c, u, func([]byte) bool { return !drop.Load() })
		<-done
	}()
}

// relay copies from src to dst while pass approves each chunk read (before
// it is written), then closes both so the other direction ends too.
func relay(dst, src net.Conn, pass func([]byte) bool) {
	defer func() {
		_ = dst.Close()
		_ = src.Close()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !pass(buf[:n]) {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // a closed connection is how every copy ends
		}
	}
}

func (p *proxy) forget(c net.Conn) {
	_ = c.Close()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// close stops the proxy and waits for its goroutines.
func (p *proxy) close() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		_ = p.ln.Close()
		for c := range p.conns {
			_ = c.Close()
		}
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// isRefused reports a dial error that means nobody listens.
func isRefused(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
