package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/conveyor-jobs/conveyor/broker/redis"
	"github.com/conveyor-jobs/conveyor/config"
)

// loadErr loads a configuration from the environment e alone and returns
// its error, failing the test when there is none.
func loadErr(t *testing.T, e env) error {
	t.Helper()
	_, err := config.Load(&config.Options{NoDotEnv: true, LookupEnv: e.lookup})
	if err == nil {
		t.Fatalf("Load with %q succeeded", redis.RedactURL(e["REDIS_URL"]))
	}
	if !errors.Is(err, config.ErrInvalid) {
		t.Fatalf("Load error %v does not match ErrInvalid", err)
	}
	return err
}

// TestURLProblemsMatchBroker runs malformed Redis URLs through config.Load
// and redis.Open: both report the same problem, found by the same checks
// (the broker's), about the same part of the URL, in the same words; the
// configuration adds its key and the value's source. An empty URL is the
// one reason the configuration words its own way ("must not be empty", as
// for any key), as the broker's names REDIS_URL.
func TestURLProblemsMatchBroker(t *testing.T) {
	const secret = "s3cretpw"
	tests := []struct {
		url  string
		part redis.URLPart
	}{
		{"", redis.URLEmpty},
		{"  ", redis.URLEmpty},
		{"localhost:6379", redis.URLScheme},
		{"default:" + secret + "@localhost:6379", redis.URLScheme},
		{"http://:" + secret + "@localhost:6379", redis.URLScheme},
		{"redis://default:p@ss/w#rd" + secret + "@localhost:6379/0", redis.URLUserinfo},
		{"redis://:100%sure" + secret + "@localhost:6379", redis.URLUserinfo},
		{"redis://:" + secret + "?x@localhost:6379", redis.URLUserinfo},
		{"redis://localhost:99999/0", redis.URLHost},
		{"rediss://localhost:0/0", redis.URLHost},
		{"redis://localhost:/0", redis.URLHost},
		{"redis://:" + secret + "@localhost:port", redis.URLHost},
		{"redis://a:7000,b:70000,c:7002/0?cluster=true", redis.URLHost},
		{"redis://a:7000,,c:7002?cluster=true", redis.URLHost},
		{"redis://,s1:26379?master_name=m", redis.URLHost},
		{"redis://?cluster=true", redis.URLHost},
		{"redis://h1:7000,:7001", redis.URLHost},
		{"redis://h1:7000,::1?cluster=true", redis.URLHost},
		{"redis://h1:7000,[::g]:7001?cluster=true", redis.URLHost},
		{"redis://localhost:6379/abc", redis.URLPath},
		{"redis://h1:7000,h2:7001/2", redis.URLPath},
		{"redis://localhost:6379?bogus=1", redis.URLQuery},
		{"redis://:" + secret + "@localhost:6379?dial_timeout=soon", redis.URLQuery},
		{"redis://:" + secret + "@localhost:6379/\x7f", redis.URLSyntax},
	}
	for _, tt := range tests {
		t.Run(redis.RedactURL(tt.url), func(t *testing.T) {
			b, err := redis.Open(tt.url, nil)
			if err == nil {
				b.Close()
				t.Fatal("Open succeeded")
			}
			var brokerErr *redis.URLError
			if !errors.As(err, &brokerErr) || !errors.Is(err, redis.ErrInvalidURL) {
				t.Fatalf("Open error %v is not a *redis.URLError matching ErrInvalidURL", err)
			}
			if brokerErr.Part != tt.part {
				t.Errorf("Open: part %d, want %d (%v)", brokerErr.Part, tt.part, err)
			}

			cfgErr := loadErr(t, env{"REDIS_URL": tt.url})
			var ce *config.Error
			var cfgURLErr *redis.URLError
			if !errors.As(cfgErr, &ce) || ce.Key != "redis.url" || !errors.As(cfgErr, &cfgURLErr) {
				t.Fatalf("Load error %v is not a *config.Error about redis.url wrapping a *redis.URLError", cfgErr)
			}
			if *cfgURLErr != *brokerErr {
				t.Errorf("Load and Open report different problems:\nLoad: %+v\nOpen: %+v", *cfgURLErr, *brokerErr)
			}
			want := brokerErr.Problem
			if tt.part == redis.URLEmpty {
				want = "must not be empty"
			}
			if msg := cfgErr.Error(); !strings.HasSuffix(msg, "(from env REDIS_URL): "+want) {
				t.Errorf("Load error %q does not end with the broker's problem %q", msg, want)
			}
			if err := config.CheckURL(tt.url); err == nil || err.Error() != want {
				t.Errorf("config.CheckURL = %v, want %q", err, want)
			}
			for _, msg := range []string{err.Error(), cfgErr.Error()} {
				if strings.Contains(msg, secret) {
					t.Errorf("error %q shows the password", msg)
				}
			}
		})
	}
}

// TestURLRulesBeyondBroker pins where the configuration's checks differ
// from Open's, on purpose: it asks for every reserved character of the user
// and password encoded and for a host (Open reads p@ss@host by its last '@',
// and no host as localhost), and it accepts unix:// socket URLs, which
// conveyor ping reaches through go-redis and the broker rejects.
func TestURLRulesBeyondBroker(t *testing.T) {
	for _, tt := range []struct {
		url  string
		part redis.URLPart
		want string
	}{
		{"redis://u:p@ss@localhost:6379", redis.URLUserinfo, `"@" as %40`},
		{"redis://default:pa:ss@localhost:6379/0", redis.URLUserinfo, `":" as %3A`},
		{"redis://h1,h2?client_name=a@b", redis.URLUserinfo, "URL-encoded"},
		{"redis:///0", redis.URLHost, "missing host"},
	} {
		if err := redis.CheckURL(tt.url); err != nil {
			t.Errorf("redis.CheckURL(%s) = %v, want nil", tt.url, err)
		}
		err := loadErr(t, env{"REDIS_URL": tt.url})
		var ue *redis.URLError
		if !errors.As(err, &ue) || ue.Part != tt.part || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Load(%s) = %v, want a *redis.URLError about part %d saying %q", redis.RedactURL(tt.url), err, tt.part, tt.want)
		}
	}

	const sock = "unix:///tmp/redis.sock"
	if _, err := config.Load(&config.Options{NoDotEnv: true, LookupEnv: env{"REDIS_URL": sock}.lookup}); err != nil {
		t.Errorf("Load(%s) = %v, want nil", sock, err)
	}
	var ue *redis.URLError
	if err := redis.CheckURL(sock); !errors.As(err, &ue) || ue.Part != redis.URLScheme {
		t.Errorf("redis.CheckURL(%s) = %v, want a scheme error", sock, err)
	}
}

// TestTLSProblemsMatchBroker gives the same TLS settings to config.Load and
// redis.Open: both report the same problem about the same setting (the
// configuration names its key and the setting's source).
func TestTLSProblemsMatchBroker(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "none.pem")
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	const tlsURL, plainURL = "rediss://127.0.0.1:1/0", "redis://127.0.0.1:1/0"
	tests := []struct {
		name, url string
		opts      redis.TLSOptions
		key       string
		problem   redis.TLSProblem
		want      string // in the config error
	}{
		{"CA file with redis://", plainURL, redis.TLSOptions{CAFile: notPEM}, "tls.ca_file", redis.TLSWithoutRediss, "use rediss://"},
		{"skip verify with redis://", plainURL, redis.TLSOptions{InsecureSkipVerify: true}, "tls.insecure_skip_verify", redis.TLSWithoutRediss, "or unset CONVEYOR_TLS_INSECURE_SKIP_VERIFY"},
		{"certificate without key", tlsURL, redis.TLSOptions{CertFile: notPEM}, "tls.key_file", redis.TLSHalfPair, "needs both tls.cert_file and tls.key_file"},
		{"key without certificate", tlsURL, redis.TLSOptions{KeyFile: notPEM}, "tls.cert_file", redis.TLSHalfPair, "needs both"},
		{"missing CA file", tlsURL, redis.TLSOptions{CAFile: missing}, "tls.ca_file", redis.TLSUnreadable, "cannot read the file: no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := redis.Open(tt.url, &redis.Options{TLS: &tt.opts})
			if err == nil {
				b.Close()
				t.Fatal("Open succeeded")
			}
			var brokerErr *redis.TLSError
			if !errors.As(err, &brokerErr) || brokerErr.Problem != tt.problem {
				t.Fatalf("Open error %v is not a *redis.TLSError with problem %d", err, tt.problem)
			}

			e := env{"REDIS_URL": tt.url, "CONVEYOR_TLS_CA_FILE": tt.opts.CAFile, "CONVEYOR_TLS_CERT_FILE": tt.opts.CertFile,
				"CONVEYOR_TLS_KEY_FILE": tt.opts.KeyFile}
			if tt.opts.InsecureSkipVerify {
				e["CONVEYOR_TLS_INSECURE_SKIP_VERIFY"] = "true"
			}
			for k, v := range e {
				if v == "" {
					delete(e, k)
				}
			}
			cfgErr := loadErr(t, e)
			var ce *config.Error
			var cfgTLSErr *redis.TLSError
			if !errors.As(cfgErr, &ce) || ce.Key != tt.key || !errors.As(cfgErr, &cfgTLSErr) {
				t.Fatalf("Load error %v is not a *config.Error about %s wrapping a *redis.TLSError", cfgErr, tt.key)
			}
			if cfgTLSErr.Field != brokerErr.Field || cfgTLSErr.Problem != brokerErr.Problem || cfgTLSErr.File != brokerErr.File {
				t.Errorf("Load and Open report different problems:\nLoad: %+v\nOpen: %+v", *cfgTLSErr, *brokerErr)
			}
			msg := cfgErr.Error()
			if !strings.Contains(msg, tt.want) {
				t.Errorf("Load error %q does not say %q", msg, tt.want)
			}
			// Half a pair names the key not set, whose source is the default.
			if src := "env " + config.EnvVar(tt.key); tt.problem != redis.TLSHalfPair && !strings.Contains(msg, src) {
				t.Errorf("Load error %q does not name the source %q", msg, src)
			}
		})
	}
}
