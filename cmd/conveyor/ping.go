package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/conveyor-jobs/conveyor/broker/redis"
	"github.com/conveyor-jobs/conveyor/config"
	"github.com/conveyor-jobs/conveyor/internal/redact"
)

// pingResult is what conveyor ping reports.
type pingResult struct {
	OK         bool   `json:"ok"`
	URL        string `json:"url"`
	Version    string `json:"server_version,omitempty"`
	Mode       string `json:"server_mode,omitempty"`
	VersionErr string `json:"server_version_error,omitempty"`
	// ConnectS and RoundTripS are durations in seconds, like every
	// duration in conveyor's JSON.
	ConnectS   float64 `json:"connect_seconds,omitempty"`
	RoundTripS float64 `json:"round_trip_seconds,omitempty"`
	TLS        bool    `json:"tls"`
	User       string  `json:"user"`
	Namespace  string  `json:"namespace"`
	Error      string  `json:"error,omitempty"`
	Diagnosis  string  `json:"diagnosis,omitempty"`
}

func newPingCmd(a *app) *cobra.Command {
	var (
		asJSON  bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "ping",
		Short: "Check the connection to Redis and explain failures",
		Long: `ping connects to the Redis at REDIS_URL, sends PING and prints the server
version, the round-trip time, whether TLS is on, the user and the namespace.

When the connection fails it exits with status 1 and says what to do:
rediss:// on a port without TLS, redis:// on a TLS port, a wrong password or
ACL user, a missing password, an untrusted certificate, a host that does not
resolve, a closed port, a host that does not answer, unencoded special
characters in the password. The password is never printed.`,
		Example: `  conveyor ping
  REDIS_URL=rediss://default:PASSWORD@redis.example.com:6380/0 conveyor ping
  conveyor ping --json`,
		Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, _ []string) error {
			if timeout <= 0 {
				timeout = a.cfg.Redis.DialTimeout
			}
			res := ping(cmd.Context(), a.cfg, timeout)
			if asJSON {
				if err := writeJSON(a.stdout, res); err != nil {
					return err
				}
			} else if res.OK {
				printPing(a, res)
			}
			if !res.OK {
				msg := "ping " + res.URL + ": " + res.Error
				if res.Diagnosis != "" {
					msg += "\n  what to do: " + res.Diagnosis
				}
				return errors.New(msg)
			}
			return nil
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "connect and read timeout (default redis.dial_timeout)")
	return cmd
}

// ping connects once (no retries) and describes the server.
func ping(ctx context.Context, c *config.Config, timeout time.Duration) pingResult {
	res := pingResult{URL: redact.URL(c.Redis.URL), TLS: c.TLSEnabled(), User: c.User(), Namespace: c.Redis.Namespace}
	var opts *goredis.Options
	fail := func(err error) pingResult {
		res.Error = redact.In(err.Error(), c.Redis.URL)
		res.Diagnosis = config.Diagnose(err, c.Redis.URL)
		if opts != nil {
			if confirmed := probeTLSMismatch(ctx, opts.Addr, res.TLS, err, timeout); confirmed != "" {
				res.Diagnosis = confirmed
			}
		}
		return res
	}
	opts, err := c.RedisOptions() // on error opts is nil: no probe
	if err != nil {
		return fail(err)
	}
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = timeout, timeout, timeout
	opts.DialerRetries = 1
	opts.MaxRetries = -1
	opts.PoolSize = 1
	rdb := goredis.NewClient(opts)
	defer rdb.Close()

	start := time.Now()
	if err := rdb.Ping(ctx).Err(); err != nil {
		return fail(err)
	}
	res.ConnectS = time.Since(start).Seconds()
	start = time.Now()
	if err := rdb.Ping(ctx).Err(); err != nil {
		return fail(err)
	}
	res.RoundTripS = time.Since(start).Seconds()
	res.OK = true
	res.Version, res.Mode, res.VersionErr = serverInfo(ctx, rdb, c.Redis.URL)
	if user, err := rdb.Do(ctx, "ACL", "WHOAMI").Text(); err == nil && user != "" {
		res.User = user
	}
	return res
}

// serverInfo returns the server's version and mode, read by the Redis
// broker with HELLO, which every ACL user may run (INFO needs a grant the
// least-privilege user lacks). When HELLO fails, version and mode are empty
// and why is the reason (password redacted).
func serverInfo(ctx context.Context, rdb *goredis.Client, rawURL string) (version, mode, why string) {
	b, err := redis.New(rdb, nil) // does not own rdb: Close leaves it open
	if err == nil {
		defer b.Close()
		var si redis.ServerInfo
		if si, err = b.ServerInfo(ctx); err == nil {
			return si.Version, si.Mode, ""
		}
	}
	return "", "", redact.In(err.Error(), rawURL)
}

func printPing(a *app, r pingResult) {
	tw := newTable(a.stdout)
	fmt.Fprintf(tw, "PONG from\t%s\n", r.URL)
	server := "Redis " + r.Version
	if r.VersionErr != "" {
		server = "Redis unknown (" + r.VersionErr + ")"
	}
	if r.Mode != "" {
		server += " (" + r.Mode + ")"
	}
	fmt.Fprintf(tw, "server\t%s\n", server)
	fmt.Fprintf(tw, "round trip\t%.2fms (connect %.2fms)\n", r.RoundTripS*1000, r.ConnectS*1000)
	fmt.Fprintf(tw, "tls\t%s\n", onOff(r.TLS))
	fmt.Fprintf(tw, "user\t%s\n", r.User)
	fmt.Fprintf(tw, "namespace\t%s\n", r.Namespace)
	_ = tw.Flush()
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// probeTLSMismatch checks the likeliest cause of a failed connection when it
// looks like a TLS mismatch, by asking the port itself: with rediss://, does
// it answer a plain PING? With redis://, does it complete a TLS handshake? It
// returns a confirmed diagnosis, or "" when the probe proves nothing.
func probeTLSMismatch(ctx context.Context, addr string, tlsOn bool, err error, timeout time.Duration) string {
	var ne net.Error
	timedOut := errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
	closed := errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
	var rec tls.RecordHeaderError
	timeout = min(timeout, 2*time.Second)
	switch {
	case tlsOn && (timedOut || errors.As(err, &rec)) && speaksPlainRedis(ctx, addr, timeout):
		return fmt.Sprintf("%s speaks plain Redis, it does not speak TLS: use redis:// with this port, or rediss:// with the server's TLS port", addr)
	case !tlsOn && (timedOut || closed) && speaksTLS(ctx, addr, timeout):
		return fmt.Sprintf("%s expects TLS (it completed a TLS handshake): use rediss:// with this port", addr)
	}
	return ""
}

// speaksPlainRedis reports whether addr answers an inline PING the way
// Redis does ("+PONG", or an error such as "-NOAUTH").
func speaksPlainRedis(ctx context.Context, addr string, timeout time.Duration) bool {
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	b := make([]byte, 1)
	if _, err := io.ReadFull(conn, b); err != nil {
		return false
	}
	return b[0] == '+' || b[0] == '-'
}

// speaksTLS reports whether addr completes a TLS handshake. The certificate
// is not verified: the question is only whether the port speaks TLS, and no
// command or credential is sent.
func speaksTLS(ctx context.Context, addr string, timeout time.Duration) bool {
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: timeout}, Config: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}} //nolint:gosec // probe only
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}
