package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/conveyor-jobs/conveyor/config"
)

// urlPassword finds the credentials of URLs in the fuzzed file ("://user:password@").
var urlPassword = regexp.MustCompile(`://[^:/@\s]*:([^\s]*)@`)

// FuzzLoad feeds arbitrary bytes to the loader as a config file. Whatever the
// bytes, Load must not panic, must return either a config or an error
// matching ErrInvalid, and must never quote a URL's credentials
// ("://user:password@") in an error. The seed corpus is testdata/config/*.yaml at the repository root.
func FuzzLoad(f *testing.F) {
	seeds, err := filepath.Glob("../testdata/config/*.yaml")
	if err != nil || len(seeds) == 0 {
		f.Fatalf("no seed corpus in ../testdata/config: %v", err)
	}
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("redis:\n  url: redis://default:p@ss@h:6379/0\n"))
	f.Add([]byte("redis: redis://default:p@ss@h:6379/0\n"))
	f.Add([]byte("redis:\n  url: [redis://default:p@ss@h:6379/0]\n"))
	f.Add([]byte("\x00\xff: ["))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "config.yaml")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := config.Load(&config.Options{File: p, NoDotEnv: true, LookupEnv: env{}.lookup})
		if err != nil {
			if !errors.Is(err, config.ErrInvalid) {
				t.Fatalf("error %v does not match ErrInvalid", err)
			}
			for _, m := range urlPassword.FindAllSubmatch(data, -1) {
				if pw := string(m[1]); len(pw) >= 4 && strings.Contains(err.Error(), string(m[0])) {
					t.Fatalf("error leaks the credentials %q: %v", m[0], err)
				}
			}
			return
		}
		if c.Redis.Namespace == "" || c.Worker.Concurrency < 1 {
			t.Fatalf("an accepted config must be valid: %+v", c)
		}
		_ = c.Entries()
	})
}
