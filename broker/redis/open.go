package redis

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/internal/redact"
)

// Open connects to the Redis at rawURL and returns a Broker that owns the
// client: Close closes it. Open checks the connection with PING and returns a
// clear error (without the password) when it fails.
//
// URL forms:
//
//	redis://[user:password@]host:port[/db][?options]      one server
//	rediss://…                                          the same over TLS
//	redis://[user:password@]h1:p1,h2:p2,h3:p3           Redis Cluster (seed nodes)
//	redis://…host:port?cluster=true                     Cluster through one seed
//	redis://…s1:26379,s2:26379?master_name=mymaster     Sentinel
//
// options are go-redis's (dial_timeout, read_timeout, pool_size, …).
// Reserved characters in the user or password (@ : / # ? %) must be
// URL-encoded. With rediss://, certificates are verified (system roots, or
// Options.TLS.CAFile). Every port must be a number from 1 to 65535 (6379
// when left out). An IPv6 address is written in brackets ([::1]:7000),
// in a host list too. Every host of a list must be given: an empty one
// (h1,,h2, or a comma at the start or the end) is an error, not localhost.
//
// A malformed URL is rejected before any connection is tried, with a
// [*URLError] (matching [ErrInvalidURL]) that names the wrong part and says
// what to fix; an empty one is named as such, with REDIS_URL, the setting
// that usually holds it. A TLS file that cannot be used is a [*TLSError].
//
// go-redis writes some lines of its own (a failed dial, say) to a logger it
// keeps for the whole process, by default on stderr. The first Open routes
// them, at warn level, to Options.Logger of the open brokers created by Open
// (to each distinct one: go-redis does not say which client a line is
// about), or to slog.Default() while none is open. It does so by calling
// go-redis's SetLogger once; an application that wants those lines
// elsewhere calls SetLogger after Open.
func Open(rawURL string, opts *Options) (*Broker, error) {
	client, addrs, err := newClient(rawURL, opts)
	if err != nil {
		return nil, err
	}
	b, err := newBroker(client, opts)
	if err != nil {
		_ = client.Close()
		return nil, err
	}
	b.owned = true
	goredisLog.add(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		goredisLog.remove(b)
		_ = client.Close()
		if strings.HasPrefix(rawURL, "rediss://") && isTimeout(err) && speaksPlainRedis(addrs[0]) {
			return nil, fmt.Errorf("conveyor/redis: connect to %s: the server does not speak TLS on this port (it answered a plain-text PING): use redis:// instead of rediss://, or the server's TLS port: %w",
				RedactURL(rawURL), err)
		}
		return nil, connError(RedactURL(rawURL), err)
	}
	return b, nil
}

// newClient builds the go-redis client for rawURL and returns it with the
// addresses it connects to.
func newClient(rawURL string, opts *Options) (goredis.UniversalClient, []string, error) {
	p, err := parseURL(rawURL)
	if err != nil {
		return nil, nil, err
	}
	var tlsOpts *TLSOptions
	if opts != nil {
		tlsOpts = opts.TLS
	}
	if err := p.applyTLS(tlsOpts); err != nil {
		return nil, nil, err
	}
	o := p.o
	if len(p.addrs) == 1 && !p.cluster && p.master == "" {
		return goredis.NewClient(o), p.addrs, nil
	}
	client := goredis.NewUniversalClient(&goredis.UniversalOptions{
		Addrs:           p.addrs,
		IsClusterMode:   p.cluster || p.master == "",
		MasterName:      p.master,
		ClientName:      o.ClientName,
		DB:              o.DB,
		Username:        o.Username,
		Password:        o.Password,
		Protocol:        o.Protocol,
		MaxRetries:      o.MaxRetries,
		MinRetryBackoff: o.MinRetryBackoff,
		MaxRetryBackoff: o.MaxRetryBackoff,
		DialTimeout:     o.DialTimeout,
		ReadTimeout:     o.ReadTimeout,
		WriteTimeout:    o.WriteTimeout,
		PoolFIFO:        o.PoolFIFO,
		PoolSize:        o.PoolSize,
		PoolTimeout:     o.PoolTimeout,
		MinIdleConns:    o.MinIdleConns,
		MaxIdleConns:    o.MaxIdleConns,
		MaxActiveConns:  o.MaxActiveConns,
		ConnMaxIdleTime: o.ConnMaxIdleTime,
		ConnMaxLifetime: o.ConnMaxLifetime,
		TLSConfig:       o.TLSConfig,
	})
	return client, p.addrs, nil
}

// RedactURL returns rawURL with its password replaced by "xxxxx", for logs
// and errors. It works on URLs that do not parse (an unencoded '@' or '/' in
// the password, a missing scheme): everything between "://" (or the start)
// and the last '@' is treated as user:password.
func RedactURL(rawURL string) string { return redact.URL(rawURL) }

// isTimeout reports a timeout or deadline error.
func isTimeout(err error) bool {
	var netErr net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &netErr) && netErr.Timeout())
}

// speaksPlainRedis reports whether addr answers a plain-text PING like a
// Redis server (with +PONG, or an error such as -NOAUTH).
func speaksPlainRedis(addr string) bool {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	buf := make([]byte, 1)
	if _, err := io.ReadFull(conn, buf); err != nil {
		return false
	}
	return buf[0] == '+' || buf[0] == '-'
}

// connError explains a failed connection to target (a redacted URL).
func connError(target string, err error) error {
	msg := err.Error()
	var (
		unknownCA x509.UnknownAuthorityError
		hostErr   x509.HostnameError
		invalid   x509.CertificateInvalidError
	)
	var hint string
	switch {
	case strings.Contains(msg, "first record does not look like a TLS handshake"),
		strings.Contains(msg, "WRONG_VERSION_NUMBER"),
		strings.Contains(msg, "wrong version number"):
		hint = "the server does not speak TLS on this port: use redis:// instead of rediss://, or the server's TLS port"
	case errors.As(err, &unknownCA):
		hint = "the server's TLS certificate is signed by an unknown authority: give its CA file (TLS CAFile)"
	case errors.As(err, &hostErr):
		hint = "the server's TLS certificate does not match the host name: connect with the name in the certificate or set TLS ServerName"
	case errors.As(err, &invalid):
		hint = "the server's TLS certificate is not valid (expired or not for server use)"
	case strings.Contains(msg, "WRONGPASS"), strings.Contains(msg, "invalid username-password"),
		strings.Contains(msg, "NOAUTH"), strings.Contains(msg, "AUTH <password> called without any password"):
		hint = "authentication failed: check the user and password (URL-encode @ : / # ? % in them)"
	case strings.Contains(msg, "NOPERM"):
		hint = "the ACL user lacks a permission conveyor needs (streams, sorted sets, sets, scripting)"
	case errors.Is(err, syscall.ECONNREFUSED):
		hint = "connection refused: is Redis running and listening on this host and port?"
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
		hint = "the server closed the connection: if it requires TLS, use rediss://"
	case isTimeout(err):
		hint = "timed out: the host is unreachable or filtered, or the port expects TLS (use rediss://)"
	}
	if hint == "" {
		return fmt.Errorf("conveyor/redis: connect to %s: %w", target, err)
	}
	return fmt.Errorf("conveyor/redis: connect to %s: %s: %w", target, hint, err)
}
