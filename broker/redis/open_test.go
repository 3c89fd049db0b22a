package redis_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/redis"
	"github.com/conveyor-jobs/conveyor/internal/redistest"
)

// openErr opens url and returns the error text, failing if Open succeeds or
// the text holds secret.
func openErr(t *testing.T, url string, opts *redis.Options, secret string) string {
	t.Helper()
	b, err := redis.Open(url, opts)
	if err == nil {
		b.Close()
		t.Fatalf("Open(%s) succeeded", redis.RedactURL(url))
	}
	if secret != "" && strings.Contains(err.Error(), secret) {
		t.Fatalf("error shows the password: %v", err)
	}
	return err.Error()
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.WithPassword("pa@ss:wo/rd"))
	tests := []struct {
		name, url, want string
		opts            *redis.Options
	}{
		{name: "empty", url: "", want: "conveyor/redis: invalid Redis URL: the URL is empty: set REDIS_URL"},
		{name: "blank", url: "  ", want: "the URL is empty: set REDIS_URL"},
		{name: "bad scheme", url: "http://u:topsecret@localhost", want: "scheme must be redis:// or rediss://"},
		{name: "no scheme", url: "default:topsecret@localhost:6379", want: "scheme must be redis:// or rediss://"},
		{name: "unencoded password", url: "redis://u:top#secret@localhost:6379", want: "URL-encode"},
		{name: "bad db", url: "redis://u:topsecret@localhost:6379/x", want: "invalid Redis URL"},
		{name: "refused", url: "redis://u:topsecret@127.0.0.1:1", want: "connection refused"},
		{name: "wrong password", url: "redis://:topsecret@" + srv.Addr(), want: "authentication failed"},
		{name: "tls options on redis://", url: "redis://:topsecret@" + srv.Addr(), opts: &redis.Options{TLS: &redis.TLSOptions{CAFile: "x"}}, want: "not a rediss:// URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if msg := openErr(t, tt.url, tt.opts, "topsecret"); !strings.Contains(msg, tt.want) {
				t.Fatalf("error %q does not say %q", msg, tt.want)
			}
		})
	}
	t.Run("encoded password works", func(t *testing.T) {
		b, err := redis.Open(srv.URL(), &redis.Options{Namespace: srv.Namespace})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if _, err := b.Publish(context.Background(), broker.Message{Topic: "t", Payload: []byte("p")}); err != nil {
			t.Fatal(err)
		}
	})
}

// TestOpenInvalidURL checks that malformed URLs, bad ports among them, are
// rejected before any connection is tried, with an error matching
// ErrInvalidURL that names the problem. CheckURL gives the same verdict.
func TestOpenInvalidURL(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, url, want string }{
		{"port too large", "redis://u:topsecret@127.0.0.1:99999/0", `port "99999" of 127.0.0.1 is not a number from 1 to 65535`},
		{"port too large over TLS", "rediss://u:topsecret@127.0.0.1:99999/0", `port "99999" of 127.0.0.1 is not a number from 1 to 65535`},
		{"port zero", "redis://127.0.0.1:0", `port "0" of 127.0.0.1`},
		{"empty port", "redis://127.0.0.1:/0", `the port after "127.0.0.1" is empty`},
		{"IPv6 port too large", "redis://[::1]:65536", `port "65536" of ::1`},
		{"cluster seed port too large", "redis://127.0.0.1:7000,127.0.0.1:99999,127.0.0.1:7002", `port "99999" of 127.0.0.1`},
		{"cluster seed port not a number", "redis://127.0.0.1:abc,127.0.0.1:7001", `port "abc" of 127.0.0.1`},
		{"cluster middle seed port not a number", "redis://127.0.0.1:7000,127.0.0.1:x1,127.0.0.1:7002", `port "x1" of 127.0.0.1`},
		{"sentinel port too large", "redis://s1:26379,s2:263790?master_name=mymaster", `port "263790" of s2`},
		{"sentinel port signed", "redis://s1:+26379,s2:26379?master_name=mymaster", `port "+26379" of s1`},
		{"port not a number", "redis://u:topsecret@127.0.0.1:abc/0", `port "abc" of 127.0.0.1 is not a number from 1 to 65535`},
		{"port signed", "redis://u:topsecret@h1:+80", `port "+80" of h1 is not a number from 1 to 65535`},
		{"first seed port signed", "redis://h1:+80,h2?cluster=true", `port "+80" of h1 is not a number from 1 to 65535`},
		{"last seed port signed", "redis://h1:7000,h2:+80?cluster=true", `port "+80" of h2 is not a number from 1 to 65535`},
		{"empty host in a cluster list", "redis://h1,,h2?cluster=true", "host 2 of 3 in the host list is empty"},
		{"trailing comma in a cluster list", "redis://u:topsecret@h1:7000,h2:7001,", "host 3 of 3 in the host list is empty"},
		{"leading comma in a sentinel list", "redis://,s1:26379?master_name=m", "host 1 of 2 in the host list is empty"},
		{"no host with cluster=true", "redis://?cluster=true", "the host is empty: write the host:port"},
		{"port without a host in a list", "redis://h1:7000,:7001", `host 2 of 2 in the host list, ":7001", has a port but no host name`},
		{"IPv6 without brackets in a list", "redis://h1:7000,::1?cluster=true", `host 2 of 2 in the host list, "::1", looks like an IPv6 address: write it in brackets`},
		{"IPv6 not an address", "redis://h1:7000,[::g]:7001?cluster=true", `host 2 of 2 in the host list, "[::g]:7001", is not an IPv6 address in brackets`},
		{"IPv6 bracket not closed", "redis://[::1,h2:7001?cluster=true", `host 1 of 2 in the host list, "[::1", is not an IPv6 address in brackets`},
		{"IPv6 port too large in a list", "redis://h1:7000,[::1]:70000?cluster=true", `port "70000" of ::1`},
		{"bad scheme", "http://u:topsecret@localhost", "scheme must be redis:// or rediss://"},
		{"unencoded password", "redis://u:top#secret@localhost:6379", "URL-encode"},
		{"bad db", "redis://u:topsecret@localhost:6379/x", "the path must be a database number"},
		{"cluster with a database", "redis://127.0.0.1:7000,127.0.0.1:7001/2", "Redis Cluster has only database 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, err := redis.Open(tt.url, nil)
			if err == nil {
				b.Close()
				t.Fatalf("Open(%s) succeeded", redis.RedactURL(tt.url))
			}
			msg := err.Error()
			if !errors.Is(err, redis.ErrInvalidURL) {
				t.Errorf("Open error %q does not match ErrInvalidURL (it was not rejected as malformed)", msg)
			}
			if !strings.Contains(msg, tt.want) {
				t.Errorf("Open error %q does not say %q", msg, tt.want)
			}
			if strings.Contains(msg, "topsecret") || strings.Contains(msg, "dial") {
				t.Errorf("Open error %q shows the password or comes from a connection attempt", msg)
			}
			if strings.Contains(msg, "URL-encode") && !strings.Contains(tt.want, "URL-encode") && !strings.Contains(tt.want, "database number") {
				t.Errorf("Open error %q advises encoding the password for a problem elsewhere", msg)
			}
			if err := redis.CheckURL(tt.url); !errors.Is(err, redis.ErrInvalidURL) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("CheckURL = %v, want an ErrInvalidURL saying %q", err, tt.want)
			}
		})
	}
	for _, ok := range []string{
		"redis://localhost", "redis://localhost:1", "rediss://u:p%40ss@host:65535/3",
		"redis://[::1]:6379", "redis://h1:7000,h2,h3:7002", "redis://s1,s2:26379?master_name=m",
		"redis://h1:7000,[::1]:7001?cluster=true", "redis://[::1]:7000,[::2],h3?cluster=true",
		"rediss://u:p%40ss@[fe80::1%25eth0]:26379,s2/1?master_name=m", "redis://h1,h2?client_name=a@b",
		"redis://", "redis://:6380",
	} {
		if err := redis.CheckURL(ok); err != nil {
			t.Errorf("CheckURL(%s) = %v, want nil", ok, err)
		}
	}
}

func TestOpenTLS(t *testing.T) {
	t.Parallel()
	srv := redistest.StartTLS(t)
	t.Run("with CA", func(t *testing.T) {
		b, err := redis.Open(srv.TLSURL, &redis.Options{Namespace: srv.Namespace, TLS: &redis.TLSOptions{CAFile: srv.CAFile}})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		ctx := context.Background()
		if _, err := b.Publish(ctx, broker.Message{Topic: "t", Payload: []byte("p")}); err != nil {
			t.Fatal(err)
		}
		ds := fetchN(t, b, []string{"t"}, 1)
		if err := b.Ack(ctx, ds...); err != nil {
			t.Fatal(err)
		}
	})
	// Turning verification off is explicit: in the options or in the URL,
	// and TLS options given for other reasons do not turn it back on.
	for name, url := range map[string]string{
		"skip_verify in the URL":        srv.TLSURL + "?skip_verify=true",
		"InsecureSkipVerify in options": srv.TLSURL,
	} {
		t.Run(name, func(t *testing.T) {
			tlsOpts := &redis.TLSOptions{ServerName: "127.0.0.1", InsecureSkipVerify: !strings.Contains(url, "skip_verify")}
			b, err := redis.Open(url, &redis.Options{TLS: tlsOpts})
			if err != nil {
				t.Fatal(err)
			}
			b.Close()
		})
	}
	t.Run("with client certificate", func(t *testing.T) {
		b, err := redis.Open(srv.TLSURL, &redis.Options{TLS: &redis.TLSOptions{CAFile: srv.CAFile, CertFile: srv.CertFile, KeyFile: srv.KeyFile}})
		if err != nil {
			t.Fatal(err)
		}
		b.Close()
	})
	tests := []struct {
		name, url, want string
		opts            *redis.Options
	}{
		{"without CA", srv.TLSURL, "unknown authority: give its CA file", nil},
		{"rediss to the plain port", strings.Replace(srv.PlainURL, "redis://", "rediss://", 1) + "?dial_timeout=300ms", "does not speak TLS on this port", nil},
		{"redis to the TLS port", strings.Replace(srv.TLSURL, "rediss://", "redis://", 1), "use rediss://", nil},
		{"wrong server name", srv.TLSURL, "does not match the host name", &redis.Options{TLS: &redis.TLSOptions{CAFile: srv.CAFile, ServerName: "example.com"}}},
		{"half a client certificate", srv.TLSURL, "needs both CertFile and KeyFile", &redis.Options{TLS: &redis.TLSOptions{CertFile: srv.CertFile}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if msg := openErr(t, tt.url, tt.opts, ""); !strings.Contains(msg, tt.want) {
				t.Fatalf("error %q does not say %q", msg, tt.want)
			}
		})
	}
}
