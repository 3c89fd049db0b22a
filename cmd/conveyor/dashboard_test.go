package main

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestDashboard(t *testing.T) {
	e, _ := redisEnv(t)
	mustRun(t, exitOK, invocation{env: e}, "produce", "--topic", "orchestrate", "--payload", `{"prompt":"hi"}`)

	ctx, cancel := context.WithCancel(t.Context())
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	a := &app{
		stdout: stdout, stderr: stderr, stdin: strings.NewReader(""),
		lookupEnv: e.with("CONVEYOR_DASHBOARD_TOKEN", "s3cret-token").lookup,
		dir:       t.TempDir(), isTerminal: func(io.Writer) bool { return false },
	}
	done := make(chan int, 1)
	go func() { done <- execute(ctx, a, []string{"dashboard", "--addr", "127.0.0.1:0", "--read-only"}) }()

	addrRE := regexp.MustCompile(`dashboard on (http://127\.0\.0\.1:\d+/) \(read-only\)`)
	var base string
	deadline := time.Now().Add(10 * time.Second)
	for base == "" {
		if m := addrRE.FindStringSubmatch(stdout.String()); m != nil {
			base = m[1]
		} else if time.Now().After(deadline) {
			cancel()
			t.Fatalf("no address printed; stdout %q stderr %q", stdout.String(), stderr.String())
		} else {
			time.Sleep(10 * time.Millisecond)
		}
	}
	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	tests := []struct {
		name, token string
		want        int
		body        string
	}{
		{"no token", "", http.StatusUnauthorized, "authentication required"},
		{"wrong token", "nope", http.StatusUnauthorized, "authentication required"},
		{"token", "s3cret-token", http.StatusOK, "orchestrate"},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(http.MethodGet, base, nil)
		if tt.token != "" {
			req.Header.Set("Authorization", "Bearer "+tt.token)
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != tt.want || !strings.Contains(string(body), tt.body) {
			t.Errorf("%s: %d, want %d with %q", tt.name, res.StatusCode, tt.want, tt.body)
		}
		if tt.want == http.StatusOK && (!strings.Contains(string(body), "read-only") || strings.Contains(string(body), "<form")) {
			t.Errorf("--read-only page has forms or no badge")
		}
	}
	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Errorf("exit %d after cancel; stderr %s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("dashboard did not stop")
	}
}

func TestDashboardBadFlags(t *testing.T) {
	e, _ := redisEnv(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"both", []string{"--basic-auth", "a:b", "--token", "t"}, "not both"},
		{"no password", []string{"--basic-auth", "admin"}, "user:password"},
		{"empty user", []string{"--basic-auth", ":pw"}, "user:password"},
	}
	for _, tt := range tests {
		r := mustRun(t, exitUsage, invocation{env: e}, append([]string{"dashboard"}, tt.args...)...)
		if !strings.Contains(r.stderr, tt.want) {
			t.Errorf("%s: stderr %q lacks %q", tt.name, r.stderr, tt.want)
		}
	}
}
