package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/conveyor-jobs/conveyor/config"
)

// FuzzLoad feeds arbitrary bytes to the loader as a config file. Whatever the
// bytes, Load must not panic, must return either a config or an error
// matching ErrInvalid, and must never put the password of a URL it read into
// an error. The seed corpus is testdata/config/*.yaml at the repository root.
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
			if strings.Contains(err.Error(), "p@ss@h") {
				t.Fatalf("error leaks a password: %v", err)
			}
			return
		}
		if c.Redis.Namespace == "" || c.Worker.Concurrency < 1 {
			t.Fatalf("an accepted config must be valid: %+v", c)
		}
		_ = c.Entries()
	})
}
