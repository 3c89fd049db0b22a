package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/internal/redact"
)

// escapes names the characters that must be percent-encoded in a URL's
// userinfo, with their encoding.
var escapes = []struct{ char, enc string }{
	{"@", "%40"}, {":", "%3A"}, {"/", "%2F"}, {"#", "%23"}, {"?", "%3F"}, {" ", "%20"},
}

// ErrUnencodedPassword is matched by the error [CheckURL] returns for a
// password (or user name) with characters that must be URL-encoded.
var ErrUnencodedPassword = errors.New("special characters in the user name or password of a URL must be URL-encoded")

// CheckURL checks a Redis URL and returns an error that says how to fix it,
// never quoting the password.
func CheckURL(s string) error {
	if strings.TrimSpace(s) == "" {
		return errEmpty
	}
	scheme, _, ok := strings.Cut(s, "://")
	if !ok {
		return errors.New("missing scheme: write redis://[user:password@]host:port/db, or rediss:// for TLS")
	}
	switch scheme {
	case "redis", "rediss", "unix":
	default:
		return fmt.Errorf("scheme %q is not supported: use redis:// (plain) or rediss:// (TLS)", scheme)
	}
	if user, password, _, ok := redact.Userinfo(s); ok {
		if err := checkEncoded("password", password); err != nil {
			return err
		}
		if err := checkEncoded("user name", user); err != nil {
			return err
		}
	}
	u, err := url.Parse(s)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("not a valid URL: %s", redact.In(err.Error(), s))
	}
	if scheme != "unix" && u.Host == "" {
		return errors.New("missing host: write redis://[user:password@]host:port/db")
	}
	if scheme != "unix" {
		if err := checkPorts(u.Host); err != nil {
			return err
		}
	}
	if _, err := goredis.ParseURL(firstHost(u)); err != nil {
		return errors.New(redact.In(err.Error(), s))
	}
	return nil
}

// checkPorts checks the port of every comma-separated host of hosts (one
// server, or Cluster seeds and Sentinels): when given, it must be a number
// from 1 to 65535. A host without a port uses 6379.
func checkPorts(hosts string) error {
	list := strings.Split(hosts, ",")
	for i, h := range list {
		if h == "" {
			if len(list) == 1 {
				return errors.New("missing host: write redis://[user:password@]host:port/db")
			}
			return fmt.Errorf("host %d of %d in the list is empty (two commas, or one at an end): remove it", i+1, len(list))
		}
		name, port, err := net.SplitHostPort(h)
		if err != nil {
			if strings.Contains(err.Error(), "missing port") {
				continue
			}
			return fmt.Errorf("host %q: %v: write host:port", h, err)
		}
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("port %q of %s is not a number from 1 to 65535: fix the port (Redis listens on 6379 unless configured otherwise)", port, name)
		}
	}
	return nil
}

// firstHost returns u as a single-server URL: the first of several
// comma-separated hosts (Cluster seeds, Sentinels), without conveyor's own
// query options (cluster, master_name), for go-redis's ParseURL.
func firstHost(u *url.URL) string {
	single := *u
	single.Host, _, _ = strings.Cut(u.Host, ",")
	q := u.Query()
	q.Del("cluster")
	q.Del("master_name")
	single.RawQuery = q.Encode()
	return single.String()
}

// checkEncoded returns an error naming the characters of part (a password
// or user name) that must be percent-encoded.
func checkEncoded(what, part string) error {
	var found []string
	for _, e := range escapes {
		if strings.Contains(part, e.char) {
			found = append(found, fmt.Sprintf("%q as %s", e.char, e.enc))
		}
	}
	if bad := badPercent(part); bad {
		found = append(found, `"%" as %25`)
	}
	if len(found) == 0 {
		return nil
	}
	return fmt.Errorf("%w: in the %s, write %s (keep the other characters as they are)",
		ErrUnencodedPassword, what, strings.Join(found, ", "))
}

// badPercent reports a "%" not followed by two hex digits.
func badPercent(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			continue
		}
		if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
			return true
		}
		i += 2
	}
	return false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// TLSEnabled reports whether the Redis URL asks for TLS (rediss://).
func (c *Config) TLSEnabled() bool {
	return strings.HasPrefix(c.Redis.URL, "rediss://")
}

// RedisOptions returns go-redis options for the configured URL, with the
// TLS settings and dial timeout applied. For a URL listing several hosts
// (Cluster seeds, Sentinels) they connect to the first.
func (c *Config) RedisOptions() (*goredis.Options, error) {
	if err := CheckURL(c.Redis.URL); err != nil {
		return nil, &Error{Key: "redis.url", Value: redact.URL(c.Redis.URL), Source: c.Source("redis.url"), Err: err}
	}
	u, err := url.Parse(c.Redis.URL)
	if err != nil {
		return nil, errors.New(redact.In(err.Error(), c.Redis.URL))
	}
	opts, err := goredis.ParseURL(firstHost(u))
	if err != nil {
		return nil, errors.New(redact.In(err.Error(), c.Redis.URL))
	}
	if opts.TLSConfig != nil {
		if err := c.TLS.apply(opts.TLSConfig); err != nil {
			return nil, err
		}
	}
	if c.Redis.DialTimeout > 0 {
		opts.DialTimeout = c.Redis.DialTimeout
	}
	return opts, nil
}

func (t TLS) apply(tc *tls.Config) error {
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return fmt.Errorf("config: tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("config: tls.ca_file %s holds no PEM certificate", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return fmt.Errorf("config: tls.cert_file/tls.key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	if t.InsecureSkipVerify {
		tc.InsecureSkipVerify = true
	}
	return nil
}

// User returns the user name in the Redis URL, or "default" when it has
// none (Redis's name for the password-only user).
func (c *Config) User() string {
	if u, err := url.Parse(c.Redis.URL); err == nil && u.User != nil && u.User.Username() != "" {
		return u.User.Username()
	}
	return "default"
}
