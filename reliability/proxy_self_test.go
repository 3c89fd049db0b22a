package reliability

import (
	"bufio"
	"net"
	"testing"
	"time"
)

// echoServer accepts connections on loopback and echoes lines back. It stops
// when the test ends.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	conns := make(chan net.Conn, 16)
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns <- c
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					if _, err := c.Write(append(sc.Bytes(), '\n')); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
		close(conns)
		for c := range conns {
			_ = c.Close()
		}
	})
	return ln.Addr().String()
}

func echo(c net.Conn, msg string) (string, error) {
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte(msg + "\n")); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return line, err
}

// TestProxy checks the proxy the network tests rely on: it forwards, Cut
// drops open connections and refuses new ones, Restore serves again on the
// same address, and Repoint switches the upstream.
func TestProxy(t *testing.T) {
	a, b := echoServer(t), echoServer(t)
	p := startProxy(t, a)

	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got, err := echo(c, "hello"); err != nil || got != "hello\n" {
		t.Fatalf("through the proxy: %q, %v", got, err)
	}

	p.Cut()
	if _, err := echo(c, "after cut"); err == nil {
		t.Fatal("an open connection still worked after Cut")
	}
	if c2, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		c2.Close()
		t.Fatal("dial succeeded while cut")
	} else if !isRefused(err) {
		t.Fatalf("dial while cut: %v, want a refused dial", err)
	}

	p.Repoint(b)
	p.Restore()
	c3, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatalf("dial after Restore: %v", err)
	}
	defer c3.Close()
	if got, err := echo(c3, "again"); err != nil || got != "again\n" {
		t.Fatalf("after Restore: %q, %v", got, err)
	}
	if n := p.Accepted(); n != 2 {
		t.Fatalf("Accepted() = %d, want 2", n)
	}
}
