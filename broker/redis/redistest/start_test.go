package redistest_test

import (
	"net"
	"os/exec"
	"strings"
	"testing"

	"github.com/conveyor-jobs/conveyor/broker/redis/redistest"
)

// requireBinary skips a test that exercises a path needing a binary that is not installed.
func requireBinary(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s not on PATH", name)
	}
}

func TestStartPaths(t *testing.T) {
	tests := []struct {
		name string
		path string
		need string
	}{
		{name: "process", path: redistest.PathProcess, need: "redis-server"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			requireBinary(t, tc.need)
			t.Setenv(redistest.EnvHarness, tc.path)
			srv := redistest.Start(t)
			if srv.Path != tc.path {
				t.Fatalf("Path = %q, want %q", srv.Path, tc.path)
			}
			if !strings.HasPrefix(srv.Namespace, "test-") || len(srv.Namespace) != len("test-")+16 {
				t.Fatalf("Namespace = %q, want test-<16 hex>", srv.Namespace)
			}
			if !strings.HasPrefix(srv.URL(), "redis://") || !strings.HasSuffix(srv.URL(), srv.Addr()) {
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
	requireBinary(t, "redis-server")
	t.Setenv(redistest.EnvHarness, redistest.PathProcess)
	a, b := redistest.Start(t), redistest.Start(t)
	if a.Namespace == b.Namespace {
		t.Fatalf("two servers share namespace %q", a.Namespace)
	}
	if a.Addr() == b.Addr() {
		t.Fatalf("two process servers share address %q", a.Addr())
	}
}

func TestRestartKeepsDataWithAOF(t *testing.T) {
	requireBinary(t, "redis-server")
	srv := redistest.Start(t, redistest.WithAOF())
	rdb := srv.Client(t)
	ctx := t.Context()
	for i, stop := range []func(testing.TB){srv.Stop, srv.Kill} {
		key := srv.Key("survivor", string(rune('a'+i)))
		if err := rdb.Set(ctx, key, "still here", 0).Err(); err != nil {
			t.Fatal(err)
		}
		stop(t)
		if c, err := net.Dial("tcp", srv.Addr()); err == nil {
			c.Close()
			t.Fatal("the server still accepts connections after it was stopped")
		}
		srv.Start(t)
		got, err := rdb.Get(ctx, key).Result()
		if err != nil || got != "still here" {
			t.Fatalf("after restart GET %s = %q, %v; want %q", key, got, err, "still here")
		}
	}
}
