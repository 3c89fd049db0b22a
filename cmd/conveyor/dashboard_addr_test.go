package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/dashboard"
)

func TestAnnounce(t *testing.T) {
	tcp := func(ip string, port int) net.Addr { return &net.TCPAddr{IP: net.ParseIP(ip), Port: port} }
	tests := []struct {
		given       string
		bound       net.Addr
		line, where string
	}{
		{"127.0.0.1:8080", tcp("127.0.0.1", 8080), "dashboard on http://127.0.0.1:8080/", "127.0.0.1:8080"},
		{"localhost:8080", tcp("127.0.0.1", 8080), "dashboard on http://localhost:8080/", "localhost:8080"},
		{"127.0.0.1:0", tcp("127.0.0.1", 40001), "dashboard on http://127.0.0.1:40001/", "127.0.0.1:40001"},
		{"[::1]:8080", tcp("::1", 8080), "dashboard on http://[::1]:8080/", "[::1]:8080"},
		{"192.0.2.7:8080", tcp("192.0.2.7", 8080), "dashboard on http://192.0.2.7:8080/", "192.0.2.7:8080"},
		{"0.0.0.0:8084", tcp("::", 8084),
			"dashboard listening on all interfaces at 0.0.0.0:8084; on this machine: http://127.0.0.1:8084/", "0.0.0.0:8084 (all interfaces)"},
		{"[::]:8084", tcp("::", 8084),
			"dashboard listening on all interfaces at [::]:8084; on this machine: http://127.0.0.1:8084/", "[::]:8084 (all interfaces)"},
		{":8084", tcp("::", 8084),
			"dashboard listening on all interfaces at :8084; on this machine: http://127.0.0.1:8084/", ":8084 (all interfaces)"},
		{"0.0.0.0:0", tcp("::", 40002),
			"dashboard listening on all interfaces at 0.0.0.0:40002; on this machine: http://127.0.0.1:40002/", "0.0.0.0:40002 (all interfaces)"},
	}
	for _, tt := range tests {
		line, where := announce(tt.given, tt.bound)
		if line != tt.line || where != tt.where {
			t.Errorf("announce(%q, %v) = %q, %q; want %q, %q", tt.given, tt.bound, line, where, tt.line, tt.where)
		}
	}
}

// lineWriter sends each write to a channel, so a test can wait for output.
type lineWriter chan string

func (w lineWriter) Write(p []byte) (int, error) {
	w <- string(p)
	return len(p), nil
}

// TestServeDashboardAllInterfaces serves on 0.0.0.0: the announcement names
// the address given, not [::], says it is every interface, and its link
// answers on this machine; the warning about a dashboard without
// authentication names the same address.
func TestServeDashboardAllInterfaces(t *testing.T) {
	stdout, stderr := make(lineWriter, 4), &syncBuffer{}
	a := &app{stdout: stdout, stderr: stderr}
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "queues") })
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- serveDashboard(ctx, a, "0.0.0.0:0", h, dashboard.Auth{}, true) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serveDashboard: %v", err)
		}
	}()

	var line string
	select {
	case line = <-stdout:
	case err := <-done:
		t.Fatalf("serveDashboard returned before announcing: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("nothing announced")
	}
	m := regexp.MustCompile(`^dashboard listening on all interfaces at 0\.0\.0\.0:(\d+); on this machine: (http://127\.0\.0\.1:(\d+)/) \(read-only\)\n$`).FindStringSubmatch(line)
	if m == nil || m[1] != m[3] {
		t.Fatalf("announcement %q", line)
	}
	if strings.Contains(line, "[::]") {
		t.Errorf("announcement shows the listener's [::]: %q", line)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	res, err := client.Get(m[2])
	if err != nil {
		t.Fatalf("GET %s: %v", m[2], err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(body) != "queues" {
		t.Errorf("GET %s = %q", m[2], body)
	}
	if want := "listens on 0.0.0.0:" + m[1] + " (all interfaces) without authentication"; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr does not contain %q:\n%s", want, stderr.String())
	}
}
