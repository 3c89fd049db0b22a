package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/broker/redis"
	"github.com/conveyor-jobs/conveyor/internal/redact"
)

// ErrUnencodedPassword is matched by the error [CheckURL] returns for a
// password (or user name) with characters that must be URL-encoded.
var ErrUnencodedPassword = redis.ErrUnencodedPassword

// urlRules are the Redis broker's URL checks as the configuration applies
// them: every reserved character of the user and password encoded, a host
// given, and unix:// socket URLs accepted (conveyor ping reaches them
// through go-redis; the broker itself rejects them when it is opened).
var urlRules = redis.URLRules{Encoded: true, Host: true, Unix: true}

// CheckURL checks a Redis URL and returns an error that says how to fix it,
// never quoting the password. The checks are the Redis broker's
// ([redis.CheckURL]), with the user and password fully percent-encoded and a
// host required; the error wraps the broker's [*redis.URLError], whose Part
// names the wrong part of the URL.
func CheckURL(s string) error { return urlProblem(urlRules.Check(s)) }

// reasonError is err told as a config error's reason: the key, value and
// source stand before it, so msg is the problem alone.
type reasonError struct {
	msg string
	err error
}

func (e *reasonError) Error() string { return e.msg }
func (e *reasonError) Unwrap() error { return e.err }

// urlProblem returns err, a *redis.URLError or nil, without the URL (a
// config error shows it as its value): the problem alone, or errEmpty's
// reason for an empty URL, as for any other key.
func urlProblem(err error) error {
	var ue *redis.URLError
	if !errors.As(err, &ue) {
		return err
	}
	if ue.Part == redis.URLEmpty {
		return &reasonError{msg: errEmpty.Error(), err: ue}
	}
	return &reasonError{msg: ue.Problem, err: ue}
}

// tlsKeys are the keys of the redis.TLSOptions fields.
var tlsKeys = map[string]string{
	"CAFile":             "tls.ca_file",
	"CertFile":           "tls.cert_file",
	"KeyFile":            "tls.key_file",
	"InsecureSkipVerify": "tls.insecure_skip_verify",
}

// tlsOptions returns the TLS settings as the Redis broker takes them.
func (c *Config) tlsOptions() *redis.TLSOptions {
	return &redis.TLSOptions{
		CAFile:             c.TLS.CAFile,
		CertFile:           c.TLS.CertFile,
		KeyFile:            c.TLS.KeyFile,
		InsecureSkipVerify: c.TLS.InsecureSkipVerify,
	}
}

// tlsErrors returns the *redis.TLSErrors that redis.CheckTLS joined in err.
func tlsErrors(err error) []*redis.TLSError {
	errs := []error{err}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		errs = joined.Unwrap()
	}
	var out []*redis.TLSError
	for _, err := range errs {
		var te *redis.TLSError
		if errors.As(err, &te) {
			out = append(out, te)
		}
	}
	return out
}

// tlsError returns e as an error about its key.
func (c *Config) tlsError(e *redis.TLSError) *Error {
	key := tlsKeys[e.Field]
	out := &Error{Key: key, Value: c.valueOf(key), Source: c.Source(key)}
	var msg string
	switch e.Problem {
	case redis.TLSWithoutRediss:
		msg = fmt.Sprintf("is set but redis.url uses redis:// (no TLS): use rediss:// to connect with TLS, or unset %s", EnvVar(key))
	case redis.TLSHalfPair:
		out.Value = ""
		msg = "must be set too: a client certificate needs both tls.cert_file and tls.key_file"
	case redis.TLSUnreadable:
		cause := e.Err
		var pe *fs.PathError
		if errors.As(cause, &pe) {
			cause = pe.Err
		}
		msg = fmt.Sprintf("cannot read the file: %v", cause)
	case redis.TLSNoCertificate:
		msg = "holds no PEM certificate"
		if e.Err != nil {
			msg = e.Err.Error()
		}
	default:
		msg = e.Error()
	}
	out.Err = &reasonError{msg: msg, err: e}
	return out
}

// TLSEnabled reports whether the Redis URL asks for TLS (rediss://).
func (c *Config) TLSEnabled() bool {
	scheme, _, _ := strings.Cut(c.Redis.URL, "://")
	return strings.EqualFold(scheme, "rediss")
}

// RedisOptions returns go-redis options for the configured URL, with the
// TLS settings and dial timeout applied. For a URL listing several hosts
// (Cluster seeds, Sentinels) they connect to the first. The URL and TLS
// settings are read as the Redis broker reads them ([redis.URLRules]); an
// error names the key at fault.
func (c *Config) RedisOptions() (*goredis.Options, error) {
	var t *redis.TLSOptions
	if c.TLSEnabled() {
		t = c.tlsOptions()
	}
	opts, err := urlRules.Options(c.Redis.URL, t)
	if err != nil {
		var te *redis.TLSError
		if errors.As(err, &te) {
			return nil, c.tlsError(te)
		}
		return nil, &Error{Key: "redis.url", Value: redact.URL(c.Redis.URL), Source: c.Source("redis.url"), Err: urlProblem(err)}
	}
	if c.Redis.DialTimeout > 0 {
		opts.DialTimeout = c.Redis.DialTimeout
	}
	return opts, nil
}

// User returns the user name in the Redis URL, or "default" when it has
// none (Redis's name for the password-only user).
func (c *Config) User() string {
	if u, err := url.Parse(c.Redis.URL); err == nil && u.User != nil && u.User.Username() != "" {
		return u.User.Username()
	}
	return "default"
}
