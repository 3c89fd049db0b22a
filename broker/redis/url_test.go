package redis_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/conveyor-jobs/conveyor/broker/redis"
)

// TestURLErrorParts checks that CheckURL names the wrong part of a URL, and
// that a password cut short by an unencoded '/', '#' or '?' is reported as
// such, naming each character with its encoding, not as whatever the wrong
// cut made of the rest.
func TestURLErrorParts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url  string
		part redis.URLPart
		want string
	}{
		{"", redis.URLEmpty, "conveyor/redis: invalid Redis URL: the URL is empty: set REDIS_URL"},
		{"localhost:6379", redis.URLScheme, "missing scheme: scheme must be redis:// or rediss://"},
		{"redis://u:p@ss/w#rd@localhost:6379/0", redis.URLUserinfo, `in the password, write "@" as %40, "/" as %2F, "#" as %23`},
		{"redis://:pw/x@localhost:6379", redis.URLUserinfo, `write "/" as %2F`},
		{"redis://:100%sure@localhost:6379", redis.URLUserinfo, `"%" as %25`},
		{"redis://localhost:0", redis.URLHost, `port "0" of localhost`},
		{"redis://localhost/x", redis.URLPath, "database number"},
		{"redis://localhost?bogus=1", redis.URLQuery, "unknown query option"},
	}
	for _, tt := range tests {
		err := redis.CheckURL(tt.url)
		var ue *redis.URLError
		if !errors.As(err, &ue) || ue.Part != tt.part || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("CheckURL(%q) = %v, want a *URLError about part %d saying %q", tt.url, err, tt.part, tt.want)
			continue
		}
		if got := err.Error(); ue.URL != "" && got != "conveyor/redis: invalid Redis URL "+ue.URL+": "+ue.Problem {
			t.Errorf("CheckURL(%q) = %q, not the URL and the problem", tt.url, got)
		}
		if (tt.part == redis.URLUserinfo) != errors.Is(err, redis.ErrUnencodedPassword) {
			t.Errorf("CheckURL(%q) = %v: matches ErrUnencodedPassword %v", tt.url, err, !(tt.part == redis.URLUserinfo))
		}
	}
}

// TestURLRules checks the rules a caller may add to Open's: each rejects
// what Open accepts, or accepts what Open rejects, and nothing else.
func TestURLRules(t *testing.T) {
	t.Parallel()
	strict := redis.URLRules{Encoded: true, Host: true, Unix: true}
	for _, tt := range []struct {
		url  string
		part redis.URLPart
		want string
	}{
		{"redis://u:p@ss@localhost:6379", redis.URLUserinfo, `"@" as %40`},
		{"redis:///0", redis.URLHost, "missing host"},
	} {
		if err := redis.CheckURL(tt.url); err != nil {
			t.Errorf("CheckURL(%s) = %v, want nil", tt.url, err)
		}
		var ue *redis.URLError
		if err := strict.Check(tt.url); !errors.As(err, &ue) || ue.Part != tt.part || !strings.Contains(ue.Problem, tt.want) {
			t.Errorf("strict Check(%s) = %v, want part %d saying %q", tt.url, err, tt.part, tt.want)
		}
	}
	const sock = "unix:///tmp/redis.sock"
	if err := redis.CheckURL(sock); err == nil {
		t.Errorf("CheckURL(%s) = nil, want a scheme error", sock)
	}
	o, err := strict.Options(sock+"?db=2", nil)
	if err != nil || o.Network != "unix" || o.Addr != "/tmp/redis.sock" || o.DB != 2 {
		t.Errorf("strict Options(%s) = %+v, %v", sock, o, err)
	}
	o, err = strict.Options("redis://:pw@h1:7000,h2:7001?cluster=true&dial_timeout=2s", nil)
	if err != nil || o.Addr != "h1:7000" || o.Password != "pw" || o.DialTimeout.String() != "2s" {
		t.Errorf("Options of a cluster URL = %+v, %v, want the first seed's", o, err)
	}
}

// TestCheckTLS checks the TLS options problems found without connecting,
// each naming its field.
func TestCheckTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, []byte("not PEM"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "none.pem")
	type problem struct {
		field string
		p     redis.TLSProblem
	}
	for _, tt := range []struct {
		url  string
		opts *redis.TLSOptions
		want []problem
	}{
		{"rediss://h", nil, nil},
		{"rediss://h", &redis.TLSOptions{CAFile: ca, ServerName: "h"}, nil},
		{"redis://h", &redis.TLSOptions{}, nil},
		{"redis://h", &redis.TLSOptions{CAFile: ca, InsecureSkipVerify: true},
			[]problem{{"CAFile", redis.TLSWithoutRediss}, {"InsecureSkipVerify", redis.TLSWithoutRediss}}},
		{"REDISS://h", &redis.TLSOptions{CertFile: ca}, []problem{{"KeyFile", redis.TLSHalfPair}}},
		{"rediss://h", &redis.TLSOptions{KeyFile: missing},
			[]problem{{"CertFile", redis.TLSHalfPair}, {"KeyFile", redis.TLSUnreadable}}},
	} {
		err := redis.CheckTLS(tt.url, tt.opts)
		var got []problem
		if err != nil {
			for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
				te := e.(*redis.TLSError)
				got = append(got, problem{te.Field, te.Problem})
			}
		}
		if len(got) != len(tt.want) {
			t.Errorf("CheckTLS(%s, %+v) = %v, want %v", tt.url, tt.opts, got, tt.want)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("CheckTLS(%s, %+v) = %v, want %v", tt.url, tt.opts, got, tt.want)
			}
		}
	}
	_, err := redis.Open("rediss://127.0.0.1:1", &redis.Options{TLS: &redis.TLSOptions{CAFile: ca}})
	var te *redis.TLSError
	if !errors.As(err, &te) || te.Field != "CAFile" || te.Problem != redis.TLSNoCertificate || te.File != ca ||
		err.Error() != "conveyor/redis: TLS CA file "+ca+" holds no PEM certificate" {
		t.Errorf("Open with a CA file without a certificate = %v", err)
	}
}
