package redis

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/internal/redact"
)

// Query parameters Open understands beyond go-redis's own.
const (
	queryCluster    = "cluster"     // "true": Redis Cluster, even with one seed address
	queryMasterName = "master_name" // Sentinel: the monitored master's name
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
// A malformed URL is rejected before any connection is tried, with an error
// wrapping [ErrInvalidURL] that says what to fix; an empty one is named as
// such, with REDIS_URL, the setting that usually holds it.
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

// ErrInvalidURL is matched (with errors.Is) by the errors [Open] and
// [CheckURL] return for a Redis URL that is malformed: a wrong scheme, port,
// database or query option, an unencoded reserved character in the password,
// TLS options with a redis:// URL. Such an error is a mistake in the
// configuration, found before any connection is tried; the message says what
// to fix and never shows the password.
var ErrInvalidURL = errors.New("conveyor/redis: invalid Redis URL")

// urlError returns an error wrapping ErrInvalidURL for the redacted URL safe:
// "conveyor/redis: invalid Redis URL <safe>: <problem>".
func urlError(safe, format string, args ...any) error {
	return fmt.Errorf("%w %s: %s", ErrInvalidURL, safe, fmt.Sprintf(format, args...))
}

// CheckURL reports whether rawURL has a form [Open] accepts (see Open for
// the forms), without connecting: the error wraps [ErrInvalidURL] and says
// what to fix. Open makes the same checks.
func CheckURL(rawURL string) error {
	_, err := parseURL(rawURL)
	return err
}

// parsedURL is a Redis URL as Open reads it.
type parsedURL struct {
	safe    string           // the URL, password redacted
	tls     bool             // rediss://
	o       *goredis.Options // auth, DB, TLS and go-redis's query options; Addr is addrs[0]
	addrs   []string         // host:port of every server given
	cluster bool             // ?cluster=true
	master  string           // ?master_name=…
}

// parseURL parses and checks rawURL without connecting.
func parseURL(rawURL string) (*parsedURL, error) {
	if strings.TrimSpace(rawURL) == "" {
		return nil, fmt.Errorf("%w: the URL is empty: set REDIS_URL (or pass a URL), such as redis://localhost:6379", ErrInvalidURL)
	}
	safe := RedactURL(rawURL)
	u, hosts, err := splitURL(rawURL)
	if err != nil {
		return nil, urlError(safe, "%s (URL-encode @ : / # ? %% in the user or password, e.g. @ as %%40)", parseProblem(err))
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return nil, urlError(safe, "scheme must be redis:// or rediss://")
	}
	p := &parsedURL{safe: safe, tls: u.Scheme == "rediss"}
	q := u.Query()
	p.cluster = q.Get(queryCluster) == "true" || q.Get(queryCluster) == "1"
	p.master = q.Get(queryMasterName)
	q.Del(queryCluster)
	q.Del(queryMasterName)
	server := len(hosts) == 1 && !p.cluster && p.master == ""
	parsed := make([]*url.URL, len(hosts))
	for i, h := range hosts {
		if parsed[i], err = checkHost(safe, h, i, len(hosts), server); err != nil {
			return nil, err
		}
	}
	// Parse a single-host form of the URL with go-redis for auth, DB, TLS
	// and its query options.
	single := *u
	single.Host = parsed[0].Host
	single.RawQuery = q.Encode()
	if p.o, err = goredis.ParseURL(single.String()); err != nil {
		return nil, urlError(safe, "%s (URL-encode @ : / # ? %% in the user or password, e.g. @ as %%40)", parseProblem(err))
	}
	if server {
		p.addrs = []string{p.o.Addr}
		return p, nil
	}
	if (p.cluster || p.master == "") && p.o.DB != 0 {
		return nil, urlError(safe, "Redis Cluster has only database 0: remove the /%d path", p.o.DB)
	}
	for _, h := range parsed {
		port := h.Port()
		if port == "" {
			port = "6379"
		}
		p.addrs = append(p.addrs, net.JoinHostPort(h.Hostname(), port))
	}
	return p, nil
}

// splitURL parses rawURL and returns it with the list of hosts its host
// part holds (h1:p1,h2:p2,…; one for a single server). url.Parse alone
// rejects a list that holds an IPv6 literal ("invalid IP-literal") or a
// malformed port anywhere but in the last host, and reads the list as one
// host; so the host part is cut out first (after the last '@', up to the
// first '/', '?' or '#'), and the cut is used only when the URL with a
// plain host in its place parses with that host. Otherwise the URL is
// parsed as written.
func splitURL(rawURL string) (*url.URL, []string, error) {
	if _, rest, ok := strings.Cut(rawURL, "://"); ok {
		start := len(rawURL) - len(rest)
		if at := strings.LastIndexByte(rest, '@'); at >= 0 {
			start += at + 1
		}
		end := len(rawURL)
		if i := strings.IndexAny(rawURL[start:], "/?#"); i >= 0 {
			end = start + i
		}
		const probe = "probe.invalid"
		if u, err := url.Parse(rawURL[:start] + probe + rawURL[end:]); err == nil && u.Host == probe {
			return u, strings.Split(rawURL[start:end], ","), nil
		}
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, nil, err
	}
	return u, strings.Split(u.Host, ","), nil
}

// checkHost checks host h, the i-th of n hosts of the URL, and returns it
// parsed (Hostname and Port). An empty host, or a port without a host, is
// an error in a list or with cluster=true or master_name, where it would
// quietly mean localhost; for a single server (server true) it is go-redis's
// default, localhost:6379.
func checkHost(safe, h string, i, n int, server bool) (*url.URL, error) {
	where := "the host"
	if n > 1 {
		where = fmt.Sprintf("host %d of %d in the host list", i+1, n)
	}
	if h == "" && !server {
		if n > 1 {
			return nil, urlError(safe, "%s is empty (two commas in a row, or a comma at the start or the end): remove the extra comma or write the host:port there", where)
		}
		return nil, urlError(safe, "the host is empty: write the host:port of a server")
	}
	if err := checkPort(safe, h); err != nil {
		return nil, err
	}
	if !strings.HasPrefix(h, "[") && strings.Count(h, ":") > 1 {
		return nil, urlError(safe, "%s, %q, looks like an IPv6 address: write it in brackets, like [::1]:6379", where, h)
	}
	u, err := url.Parse("redis://" + h)
	switch {
	case err != nil && strings.HasPrefix(h, "["):
		return nil, urlError(safe, "%s, %q, is not an IPv6 address in brackets with an optional port, like [::1]:6379", where, h)
	case err != nil:
		return nil, urlError(safe, "%s, %q: %s", where, h, parseProblem(err))
	case u.Hostname() == "" && !server:
		return nil, urlError(safe, "%s, %q, has a port but no host name: write host:port", where, h)
	}
	return u, nil
}

// checkPort returns an error wrapping ErrInvalidURL when addr (one host of
// the URL, with or without a port) has a port that is not a number from 1 to
// 65535. An address without a port uses 6379.
func checkPort(safe, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil // no port (6379), or a host the parsers report
	}
	if port == "" {
		return urlError(safe, "the port after %q is empty: write %s:6379 (or the server's port), or leave out the ':'", host, host)
	}
	n, err := strconv.Atoi(port)
	if err != nil || strings.Trim(port, "0123456789") != "" || n < 1 || n > 65535 {
		return urlError(safe, "port %q of %s is not a number from 1 to 65535: fix the port (Redis listens on 6379 unless configured otherwise)", port, host)
	}
	return nil
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
	if tlsOpts != nil && *tlsOpts != (TLSOptions{}) && !p.tls {
		return nil, nil, urlError(p.safe, "TLS options are set but this is not a rediss:// URL: use rediss:// or remove the TLS options")
	}
	o := p.o
	if o.TLSConfig != nil {
		if err := applyTLS(o.TLSConfig, tlsOpts); err != nil {
			return nil, nil, err
		}
	}
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

// parseProblem describes a URL parse error without quoting any part of the
// URL: the parsers quote the fragment they choke on, which can be a piece
// of a password holding an unencoded reserved character.
func parseProblem(err error) string {
	msg := err.Error()
	for _, p := range []struct{ key, say string }{
		{"invalid port", "invalid port after the host"},
		{"invalid database number", "the path must be a database number, like /0"},
		{"invalid URL path", "the path must be a database number, like /0"},
		{"unexpected option", "unknown query option"},
		{"invalid userinfo", "invalid user or password"},
		{"invalid URL escape", "invalid %-escape"},
		{"invalid character", "invalid character in the host"},
		{"missing protocol scheme", "missing redis:// or rediss://"},
		{"first path segment in URL cannot contain colon", "missing redis:// or rediss://"},
	} {
		if strings.Contains(msg, p.key) {
			return p.say
		}
	}
	return "malformed URL"
}

// applyTLS adds t's files and settings to c.
func applyTLS(c *tls.Config, t *TLSOptions) error {
	if c.MinVersion == 0 {
		c.MinVersion = tls.VersionTLS12
	}
	if t == nil {
		return nil
	}
	if t.ServerName != "" {
		c.ServerName = t.ServerName
	}
	if t.InsecureSkipVerify { // never turns off a skip_verify=true the URL asked for
		c.InsecureSkipVerify = true
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return fmt.Errorf("conveyor/redis: TLS CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("conveyor/redis: TLS CA file %s holds no PEM certificate", t.CAFile)
		}
		c.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		if t.CertFile == "" || t.KeyFile == "" {
			return errors.New("conveyor/redis: TLS client certificate needs both CertFile and KeyFile")
		}
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return fmt.Errorf("conveyor/redis: TLS client certificate: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return nil
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
