package redact_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/conveyor-jobs/conveyor/internal/redact"
)

func TestURL(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"empty", "", ""},
		{"no userinfo", "redis://localhost:6379/0", "redis://localhost:6379/0"},
		{"password only", "rediss://:s3cret@h:6380", "rediss://:xxxxx@h:6380"},
		{"user and password", "redis://default:s3cret@h:6379/0", "redis://default:xxxxx@h:6379/0"},
		{"unencoded @ / #", "redis://default:p@ss/w#rd@h:6379/0", "redis://default:xxxxx@h:6379/0"},
		{"unencoded : @ / #", "redis://user:p@ss:w/rd#x@host:6379/0", "redis://user:xxxxx@host:6379/0"},
		{"encoded", "rediss://:p%40ss%2Fword@h:6380?dial_timeout=3s", "rediss://:xxxxx@h:6380?dial_timeout=3s"},
		{"user without password", "redis://user@h:6379/0", "redis://user@h:6379/0"},
		{"empty password", "redis://user:@h", "redis://user:xxxxx@h"},
		{"no scheme", "default:s3cret@127.0.0.1:6379", "default:xxxxx@127.0.0.1:6379"},
		{"no scheme, :// after the @", "u:s3cret@h/x://y", "u:xxxxx@h/x://y"},
		{":// in the password", "redis://u:a://b@h", "redis://u:xxxxx@h"},
		{"no scheme, :// in the password", "u:a://b@h", "u:xxxxx@h"},
		{"host only", "h:6379", "h:6379"},
		{"not a url", "not a url", "not a url"},
		{"query password is not userinfo", "redis://h?password=s3cret", "redis://h?password=s3cret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := redact.URL(tt.in); got != tt.want {
				t.Errorf("URL(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestAddress(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"redis://localhost:6379/0", "redis://localhost:6379/0"},
		{"redis://default:hunter22@localhost:6379/0", "redis://default:xxxxx@localhost:6379/0"},
		{"rediss://:p%40ss%2Fword@h:6380?dial_timeout=3s", "rediss://:xxxxx@h:6380"},
		{"redis://u:pa@ss/w#rd@host:6379", "redis://u:xxxxx@host:6379"},
		{"redis://localhost:6379?password=hunter22", "redis://localhost:6379"},
		{"redis://localhost:6379#hunter22", "redis://localhost:6379"},
		{"localhost:6379?password=hunter22", "localhost:6379"},
	}
	for _, tt := range tests {
		if got := redact.Address(tt.in); got != tt.want {
			t.Errorf("Address(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestUserinfo(t *testing.T) {
	tests := []struct {
		in, user, password string
		hasPassword, ok    bool
	}{
		{"redis://h:6379", "", "", false, false},
		{"redis://u@h", "u", "", false, true},
		{"redis://u:@h", "u", "", true, true},
		{"redis://u:p@ss@h", "u", "p@ss", true, true},
		{"redis://u:p:w@h", "u", "p:w", true, true},
		{"u:p@h", "u", "p", true, true},
		{"u:p@h/x://y", "u", "p", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			user, pw, hasPW, ok := redact.Userinfo(tt.in)
			if user != tt.user || pw != tt.password || hasPW != tt.hasPassword || ok != tt.ok {
				t.Errorf("Userinfo(%q) = %q, %q, %v, %v; want %q, %q, %v, %v",
					tt.in, user, pw, hasPW, ok, tt.user, tt.password, tt.hasPassword, tt.ok)
			}
		})
	}
}

func TestPassword(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"redis://h:6379", ""},
		{"redis://u@h", ""},
		{"redis://u:hunter22@h", "hunter22"},
		{"redis://u:hun@ter/22@h", "hun@ter/22"},
		{"redis://u:hun%40ter%2F22@h", "hun%40ter%2F22"},
		{"u:hunter22@h", "hunter22"},
		{"redis://h?password=hunter22", "hunter22"},
		{"redis://u@h?db=1&password=hunter22", "hunter22"},
		{"redis://u:@h?password=hunter22", "hunter22"},
		{"redis://h?x=%zz&password=hunter22", "hunter22"},
		{"redis://u:first@h?password=second", "first"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := redact.Password(tt.in); got != tt.want {
				t.Errorf("Password(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestIn(t *testing.T) {
	tests := []struct{ name, msg, url, want string }{
		{"as written", "auth failed for hunter22", "redis://u:hunter22@h", "auth failed for xxxxx"},
		{"decoded", "auth failed for hun@ter/22", "redis://u:hun%40ter%2F22@h", "auth failed for xxxxx"},
		{"query-escaped", "bad hun%40ter", "redis://u:hun@ter@h", "bad xxxxx"},
		{"path-escaped space", "bad a%20bcd", "redis://u:a bcd@h", "bad xxxxx"},
		{"query parameter", "auth failed for hunter22", "redis://h?password=hunter22", "auth failed for xxxxx"},
		{"no scheme", "auth failed for hunter22", "u:hunter22@h", "auth failed for xxxxx"},
		{"every occurrence", "hunter22 and hunter22", "redis://:hunter22@h", "xxxxx and xxxxx"},
		{"short password kept", "a pw in text", "redis://:pw@h", "a pw in text"},
		{"short password, long form", "dial p%40 failed", "redis://:p@@h", "dial xxxxx failed"},
		{"no password", "dial redis://h failed", "redis://h", "dial redis://h failed"},
		{"longest form first", "x a%2540bc y", "redis://u:a%40bc@h", "x xxxxx y"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := redact.In(tt.msg, tt.url); got != tt.want {
				t.Errorf("In(%q, %q) = %q, want %q", tt.msg, tt.url, got, tt.want)
			}
		})
	}

	// Whatever form an error quotes, the password does not survive.
	for _, raw := range []string{"redis://u:hunter22@h", "redis://u:hun@ter/22@h", "redis://u:hun%40ter%2F22@h", "redis://h?password=hunter22"} {
		pw := redact.Password(raw)
		dec, _ := url.PathUnescape(pw)
		msg := redact.In("dial "+raw+": auth failed for "+pw+" ("+dec+")", raw)
		if strings.Contains(msg, "hunter22") || strings.Contains(msg, "hun@ter/22") || strings.Contains(msg, pw) {
			t.Errorf("In left the password of %s: %s", raw, msg)
		}
	}
}

func TestURLsIn(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"no url", "no url here", "no url here"},
		{"no userinfo", "redis://localhost:6379/0", "redis://localhost:6379/0"},
		{"password only", "redis://:secret@host:6379", "redis://:xxxxx@host:6379"},
		{"followed by text", "rediss://user:secret@host:6380/1 refused", "rediss://user:xxxxx@host:6380/1 refused"},
		{"token", "https://ghp_token@github.com/x", "https://xxxxx@github.com/x"},
		{"quoted, unencoded", `parse "redis://u:p@ss:w/rd@host": invalid port`, `parse "redis://u:xxxxx@host": invalid port`},
		{"quote in the password", `url "redis://u:pa"ss@h"`, `url "redis://u:xxxxx@h"`},
		{"two urls", "a redis://a:1@h and amqp://b:2@h", "a redis://a:xxxxx@h and amqp://b:xxxxx@h"},
		{"email", "mail me@example.com", "mail me@example.com"},
		{"no scheme", `line 2: "://default:p@ss@h:6379/0"`, `line 2: "://default:xxxxx@h:6379/0"`},
		{"fragment inside a url", "…ault:s3cret@h", "…ault:s3cret@h"},
		{"user with @", "redis://u@x:pw@h", "redis://u@x:xxxxx@h"},
		{"newline ends a url", "redis://h\nme:x@y", "redis://h\nme:x@y"},
		{"empty userinfo", "redis://@h", "redis://xxxxx@h"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := redact.URLsIn(tt.in); got != tt.want {
				t.Errorf("URLsIn(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// FuzzRedact checks that no function panics on any input and, for
// generated [scheme://]user:password@host URLs, that none shows the password:
// URL and URLsIn hide exactly the password, Password finds it, and In removes
// it from a message quoting it.
func FuzzRedact(f *testing.F) {
	f.Add("redis", "default", "s3cret", "h:6379/0")
	f.Add("", "u", "p@ss/w#rd", "h")
	f.Add("rediss", "", "p%40ss", "h:6380?dial_timeout=1s")
	f.Add("redis", "u", "a://b", "h/x://y")
	f.Add("", "u", "a://b", "h")
	f.Add("", "u", "pw", "h?password=q")
	f.Fuzz(func(t *testing.T, scheme, user, password, host string) {
		for _, s := range []string{scheme, user, password, host} {
			_ = redact.URL(s)
			_ = redact.URLsIn(s)
			_ = redact.Password(s)
			_ = redact.In(s, s)
			_, _, _, _ = redact.Userinfo(s)
		}

		// Only well-formed cases from here: a valid scheme or none, a user
		// without ':' or '@', a host without '@', and a password the mask
		// cannot hide in (one with an 'x' could straddle a mask).
		prefix := ""
		if scheme != "" {
			if !validScheme(scheme) {
				return
			}
			prefix = scheme + "://"
		}
		if strings.ContainsAny(user, ":@") || strings.Contains(host, "@") ||
			len(password) < 3 || strings.Contains(password, "x") ||
			scheme == "" && validScheme(user) && strings.HasPrefix(password, "//") {
			return
		}
		raw := prefix + user + ":" + password + "@" + host
		want := prefix + user + ":" + redact.Mask + "@" + host
		if got := redact.URL(raw); got != want {
			t.Fatalf("URL(%q) = %q, want %q", raw, got, want)
		}
		if got := redact.Password(raw); got != password {
			t.Fatalf("Password(%q) = %q, want %q", raw, got, password)
		}
		msg := "dial " + raw + ": auth failed for " + password
		if got := redact.In(msg, raw); strings.Contains(got, password) {
			t.Fatalf("In(%q, %q) = %q shows the password", msg, raw, got)
		}
		if prefix != "" && !strings.ContainsAny(user+password+host, " \t\n\f\r") {
			msg := "dial " + raw + ": refused"
			if got, want := redact.URLsIn(msg), "dial "+want+": refused"; got != want {
				t.Fatalf("URLsIn(%q) = %q, want %q", msg, got, want)
			}
		}
	})
}

func validScheme(s string) bool {
	for i, c := range s {
		letter := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
		if !letter && (i == 0 || !('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return false
		}
	}
	return s != ""
}

func ExampleURL() {
	fmt.Println(redact.URL("rediss://default:s3cret@redis.example.com:6380/0"))
	fmt.Println(redact.URL("redis://default:p@ss/w#rd@localhost:6379")) // does not parse
	// Output:
	// rediss://default:xxxxx@redis.example.com:6380/0
	// redis://default:xxxxx@localhost:6379
}

func ExampleIn() {
	raw := "redis://app:p%40ss%2Fword@cache:6379"
	fmt.Println(redact.In("WRONGPASS for p@ss/word", raw))
	// Output:
	// WRONGPASS for xxxxx
}

func ExampleURLsIn() {
	fmt.Println(redact.URLsIn("dial redis://worker:s3cret@cache:6379: refused; clone https://ghp_token@github.com/x"))
	// Output:
	// dial redis://worker:xxxxx@cache:6379: refused; clone https://xxxxx@github.com/x
}
