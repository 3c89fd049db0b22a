package redistest_test

import (
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/broker/redis/redistest"
)

// requireBinary skips a test that exercises a path needing a binary that is not installed.
func requireBinary(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s not on PATH", name)
	}
}

// requirePath skips unless the given harness path can run here, and forces Start to it.
// When CONVEYOR_REDIS_HARNESS already forces that path (as CI does for containers), the
// path must work: nothing is skipped.
func requirePath(t *testing.T, path string) {
	t.Helper()
	if os.Getenv(redistest.EnvHarness) != path {
		switch path {
		case redistest.PathProcess:
			requireBinary(t, "redis-server")
		case redistest.PathContainer:
			image := os.Getenv(redistest.EnvImage)
			if image == "" {
				image = redistest.DefaultImage
			}
			if os.Getenv("TESTCONTAINERS_RYUK_DISABLED") != "true" {
				t.Skip("container path not exercised: TESTCONTAINERS_RYUK_DISABLED is not \"true\"")
			}
			if err := exec.Command("docker", "image", "inspect", image).Run(); err != nil {
				t.Skipf("container path not exercised: no Docker engine or no local image %s (testdata/redis-image/build.sh)", image)
			}
		}
	}
	t.Setenv(redistest.EnvHarness, path)
}

func TestStartPaths(t *testing.T) {
	tests := []struct {
		name string
		path string
	}{
		{name: "container", path: redistest.PathContainer},
		{name: "process", path: redistest.PathProcess},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			requirePath(t, tc.path)
			srv := redistest.Start(t)
			if srv.Path != tc.path {
				t.Fatalf("Path = %q, want %q", srv.Path, tc.path)
			}
			if !strings.HasPrefix(srv.Namespace, "test-") || len(srv.Namespace) != len("test-")+16 {
				t.Fatalf("Namespace = %q, want test-<16 hex>", srv.Namespace)
			}
			if srv.URL() != "redis://"+srv.Addr() {
				t.Fatalf("URL() = %q, Addr() = %q", srv.URL(), srv.Addr())
			}
			rdb := srv.Client(t)
			key := srv.Key("k")
			if err := rdb.Set(t.Context(), key, "v", 0).Err(); err != nil {
				t.Fatal(err)
			}
			if got := rdb.Get(t.Context(), key).Val(); got != "v" {
				t.Fatalf("GET %s = %q, want v", key, got)
			}
		})
	}
}

func TestNamespacesDiffer(t *testing.T) {
	requirePath(t, redistest.PathProcess)
	a, b := redistest.Start(t), redistest.Start(t)
	if a.Namespace == b.Namespace {
		t.Fatalf("two servers share namespace %q", a.Namespace)
	}
	if a.Addr() == b.Addr() {
		t.Fatalf("two process servers share address %q", a.Addr())
	}
}

func TestPassword(t *testing.T) {
	for _, path := range []string{redistest.PathContainer, redistest.PathProcess} {
		t.Run(path, func(t *testing.T) {
			requirePath(t, path)
			srv := redistest.Start(t, redistest.WithPassword("p@ss:word/#"))
			if err := srv.Client(t).Ping(t.Context()).Err(); err != nil {
				t.Fatalf("PING with password: %v", err)
			}
			if !strings.HasPrefix(srv.URL(), "redis://:p%40ss%3Aword%2F%23@") {
				t.Fatalf("URL() = %q: password not escaped", srv.URL())
			}
			o, err := goredis.ParseURL(srv.URL())
			if err != nil || o.Password != "p@ss:word/#" {
				t.Fatalf("ParseURL(URL()) password = %q, %v", o.Password, err)
			}
			noAuth := goredis.NewClient(&goredis.Options{Addr: srv.Addr(), MaxRetries: -1})
			defer noAuth.Close()
			if err := noAuth.Get(t.Context(), srv.Key("x")).Err(); err == nil || !strings.HasPrefix(err.Error(), "NOAUTH") {
				t.Fatalf("GET without password: %v, want NOAUTH", err)
			}
		})
	}
}

func TestWithArgs(t *testing.T) {
	for _, path := range []string{redistest.PathContainer, redistest.PathProcess} {
		t.Run(path, func(t *testing.T) {
			requirePath(t, path)
			srv := redistest.Start(t, redistest.WithArgs("--maxmemory-policy", "noeviction", "--databases", "3"))
			got, err := srv.Client(t).ConfigGet(t.Context(), "databases").Result()
			if err != nil {
				t.Fatal(err)
			}
			if got["databases"] != "3" {
				t.Fatalf("CONFIG GET databases = %v, want 3", got)
			}
		})
	}
}

// TestURLPath points REDIS_URL at a server of our own and checks that the url path uses
// it, shares it only through the namespace, and deletes only its namespace's keys.
func TestURLPath(t *testing.T) {
	requirePath(t, redistest.PathProcess)
	shared := redistest.Start(t)
	owner := shared.Client(t)
	ctx := t.Context()
	if err := owner.Set(ctx, "someone-else:key", "keep me", 0).Err(); err != nil {
		t.Fatal(err)
	}
	var ns string
	t.Run("use", func(t *testing.T) {
		t.Setenv(redistest.EnvURL, shared.URL())
		t.Setenv(redistest.EnvHarness, redistest.PathURL)
		srv := redistest.Start(t)
		if srv.Path != redistest.PathURL || srv.Addr() != shared.Addr() || srv.URL() != shared.URL() {
			t.Fatalf("Path %q Addr %q URL %q; want url path at %s", srv.Path, srv.Addr(), srv.URL(), shared.Addr())
		}
		ns = srv.Namespace
		rdb := srv.Client(t)
		for _, k := range []string{srv.Key("a"), srv.Key("{topic}", "stream")} {
			if err := rdb.Set(ctx, k, "x", 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
		if n := owner.Exists(ctx, srv.Key("a")).Val(); n != 1 {
			t.Fatalf("key written through the url path not visible on the server it points at")
		}
	})
	keys, err := owner.Keys(ctx, ns+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 0 {
		t.Fatalf("namespace keys left after the test: %v", keys)
	}
	if got := owner.Get(ctx, "someone-else:key").Val(); got != "keep me" {
		t.Fatalf("a key outside the namespace was touched: %q", got)
	}
}

func TestRestartKeepsDataWithAOF(t *testing.T) {
	for _, path := range []string{redistest.PathContainer, redistest.PathProcess} {
		t.Run(path, func(t *testing.T) {
			requirePath(t, path)
			srv := redistest.Start(t, redistest.WithAOF())
			rdb := srv.Client(t)
			ctx := t.Context()
			stops := []struct {
				name string
				stop func(testing.TB)
			}{
				{"Stop", srv.Stop},
				{"Kill", srv.Kill},
			}
			for _, s := range stops {
				key := srv.Key("survivor", s.name)
				if err := rdb.Set(ctx, key, "still here", 0).Err(); err != nil {
					t.Fatal(err)
				}
				old := srv.Addr()
				s.stop(t)
				if c, err := net.Dial("tcp", old); err == nil {
					// A container's mapped port may be held by the engine's proxy:
					// only a process must refuse outright.
					c.Close()
					if path == redistest.PathProcess {
						t.Fatalf("%s: the server still accepts connections", s.name)
					}
				}
				srv.Start(t)
				got, err := rdb.Get(ctx, key).Result()
				if err != nil || got != "still here" {
					t.Fatalf("after %s and Start, GET %s = %q, %v; want %q", s.name, key, got, err, "still here")
				}
			}
			srv.Restart(t)
			if n := rdb.Exists(ctx, srv.Key("survivor", "Stop"), srv.Key("survivor", "Kill")).Val(); n != 2 {
				t.Fatalf("after Restart %d of 2 keys exist", n)
			}
		})
	}
}

// TestStartDefault lets Start choose, as users' tests do.
func TestStartDefault(t *testing.T) {
	srv := redistest.Start(t)
	switch srv.Path {
	case redistest.PathContainer, redistest.PathProcess, redistest.PathURL:
	default:
		t.Fatalf("Path = %q", srv.Path)
	}
	if err := srv.Client(t).Ping(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
}
