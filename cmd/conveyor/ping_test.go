package main

import (
	"encoding/json"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker/redis/redistest"
)

func TestPingOK(t *testing.T) {
	e, _ := redisEnv(t)
	r := mustRun(t, exitOK, invocation{env: e}, "ping")
	golden(t, "ping", r.stdout)

	r = mustRun(t, exitOK, invocation{env: e}, "ping", "--json")
	var res pingResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatal(err)
	}
	if !res.OK || res.Version == "" || res.TLS || res.User != "default" || res.Namespace != e["REDIS_NAMESPACE"] || res.RoundTripS <= 0 {
		t.Fatalf("ping --json = %+v", res)
	}
}

func TestPingTLS(t *testing.T) {
	srv := redistest.StartTLS(t)
	e := env{"REDIS_URL": srv.TLSURL + "/0", "CONVEYOR_TLS_CA_FILE": srv.CAFile, "REDIS_NAMESPACE": srv.Namespace}
	r := mustRun(t, exitOK, invocation{env: e}, "ping", "--json")
	var res pingResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatal(err)
	}
	if !res.OK || !res.TLS {
		t.Fatalf("ping over TLS = %+v", res)
	}
}

// neverAnswers returns the address of a listener that accepts connections and
// never writes a byte.
func neverAnswers(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var conns []net.Conn
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// closedPort returns a loopback address where nothing listens: port 1, which
// only a privileged process could bind and nothing here does. (A port taken
// from a listener just closed can be handed out again at once, to a
// listener of a parallel test.)
func closedPort(t *testing.T) string {
	t.Helper()
	const addr = "127.0.0.1:1"
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("something listens on %s: this test needs a port where nothing does", addr)
	}
	return addr
}

// TestPingDiagnoses provokes each connection failure for real and checks
// that ping exits 1 with advice that says what to do, and never prints the
// password.
func TestPingDiagnoses(t *testing.T) {
	const password = "s3cret-Pass"
	tlsSrv := redistest.StartTLS(t)
	authSrv := redistest.Start(t, redistest.WithPassword(password))
	withPass := func(user, pass string) string {
		return "redis://" + url.UserPassword(user, pass).String() + "@" + authSrv.Addr() + "/0"
	}
	tests := []struct {
		name string
		env  env
		want []string
	}{
		{"rediss to a plain port", env{"REDIS_URL": "rediss://" + tlsSrv.PlainAddr + "/0", "CONVEYOR_TLS_CA_FILE": tlsSrv.CAFile},
			[]string{"speaks plain Redis", "does not speak TLS", "use redis://"}},
		{"redis to a TLS port", env{"REDIS_URL": "redis://" + tlsSrv.TLSAddr + "/0"},
			[]string{"expects TLS (it completed a TLS handshake)", "use rediss://"}},
		{"certificate not trusted", env{"REDIS_URL": "rediss://" + tlsSrv.TLSAddr + "/0"},
			[]string{"unknown authority", "CONVEYOR_TLS_CA_FILE"}},
		{"wrong password", env{"REDIS_URL": withPass("default", "not-the-"+password)},
			[]string{"WRONGPASS", "check the user", "password"}},
		{"unknown ACL user", env{"REDIS_URL": withPass("nobody", password)},
			[]string{"WRONGPASS", "ACL user"}},
		{"no password", env{"REDIS_URL": "redis://" + authSrv.Addr() + "/0"},
			[]string{"NOAUTH", "requires a password", "redis://default:PASSWORD@"}},
		{"closed port", env{"REDIS_URL": "redis://" + closedPort(t) + "/0"},
			[]string{"connection refused", "nothing accepts connections", "check the port"}},
		{"server never answers", env{"REDIS_URL": "redis://" + neverAnswers(t) + "/0"},
			[]string{"timeout", "never answered", "use rediss://"}},
		{"TLS handshake never answered", env{"REDIS_URL": "rediss://" + neverAnswers(t) + "/0"},
			[]string{"TLS handshake", "did not complete"}},
		{"unknown host", env{"REDIS_URL": "redis://no-such-host.invalid:6379/0"},
			[]string{"no-such-host.invalid", "does not resolve"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel() // most cases wait for a timeout
			start := time.Now()
			r := mustRun(t, exitFail, invocation{env: tt.env.with("CONVEYOR_REDIS_DIAL_TIMEOUT", "1s")}, "ping")
			if took := time.Since(start); took > 15*time.Second {
				t.Errorf("ping took %v to fail", took)
			}
			for _, w := range append(tt.want, "what to do:") {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr does not contain %q:\n%s", w, r.stderr)
				}
			}
			if strings.Contains(r.stderr+r.stdout, password) {
				t.Errorf("output leaks the password:\n%s", r.stderr)
			}

			// --json reports the same diagnosis on stdout.
			r = mustRun(t, exitFail, invocation{env: tt.env.with("CONVEYOR_REDIS_DIAL_TIMEOUT", "1s")}, "ping", "--json")
			var res pingResult
			if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
				t.Fatalf("%v\n%s", err, r.stdout)
			}
			if res.OK || res.Diagnosis == "" || !strings.Contains(r.stderr, res.Diagnosis) {
				t.Errorf("ping --json = %+v", res)
			}
		})
	}
}

func TestPingUnencodedPassword(t *testing.T) {
	const password = "p@ss/w#rd"
	r := mustRun(t, exitUsage, invocation{env: env{"REDIS_URL": "redis://default:" + password + "@localhost:6379/0"}}, "ping")
	for _, w := range []string{"redis.url", "env REDIS_URL", `"@" as %40`, `"/" as %2F`, `"#" as %23`} {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr does not contain %q:\n%s", w, r.stderr)
		}
	}
	if strings.Contains(r.stderr, password) {
		t.Errorf("stderr leaks the password:\n%s", r.stderr)
	}
}
