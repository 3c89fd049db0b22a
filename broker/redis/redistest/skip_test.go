package redistest_test

import (
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/conveyor-jobs/conveyor/broker/redis/redistest"
)

// helperEnv gates TestHelperStart, which only runs as a subprocess of TestNoRedis.
const helperEnv = "REDISTEST_HELPER"

// TestHelperStart calls Start in an environment TestNoRedis prepared.
func TestHelperStart(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Skip("runs only as a subprocess of TestNoRedis")
	}
	srv := redistest.Start(t)
	t.Logf("HELPER-GOT-SERVER %s", srv.Path)
}

// TestNoRedis runs Start where no Redis can be found, in a subprocess, and checks that it
// skips with the marker line, fails instead when CI=true, and fails when a forced path is
// unavailable.
func TestNoRedis(t *testing.T) {
	tests := []struct {
		name     string
		env      []string
		wantFail bool
		want     string
	}{
		{name: "skip", want: "--- SKIP: TestHelperStart", env: nil},
		{name: "CI fails", env: []string{"CI=true"}, wantFail: true, want: "--- FAIL: TestHelperStart"},
		{name: "forced process", env: []string{redistest.EnvHarness + "=process"}, wantFail: true, want: "CONVEYOR_REDIS_HARNESS=process, but that path failed"},
		{name: "forced url", env: []string{redistest.EnvHarness + "=url"}, wantFail: true, want: "REDIS_URL unset"},
		{name: "bad harness value", env: []string{redistest.EnvHarness + "=vm"}, wantFail: true, want: `CONVEYOR_REDIS_HARNESS="vm"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperStart$", "-test.v")
			cmd.Env = append(withoutRedisEnv(os.Environ()),
				helperEnv+"=1",
				"PATH="+t.TempDir(), // no redis-server
				"DOCKER_HOST=unix://"+t.TempDir()+"/no-engine.sock",
				"TESTCONTAINERS_RYUK_DISABLED=true",
			)
			cmd.Env = append(cmd.Env, tc.env...)
			out, err := cmd.CombinedOutput()
			if failed := err != nil; failed != tc.wantFail {
				t.Fatalf("subprocess failed = %v (%v), want %v; output:\n%s", failed, err, tc.wantFail, out)
			}
			if !strings.Contains(string(out), tc.want) || strings.Contains(string(out), "HELPER-GOT-SERVER") {
				t.Fatalf("output lacks %q (or found a server):\n%s", tc.want, out)
			}
			if tc.env == nil || tc.name == "CI fails" {
				var marker []string
				for _, line := range strings.Split(string(out), "\n") {
					if strings.Contains(line, redistest.NoRedisMarker) {
						marker = append(marker, line)
					}
				}
				if len(marker) != 1 {
					t.Fatalf("want exactly one line with %q, got %d:\n%s", redistest.NoRedisMarker, len(marker), out)
				}
			}
		})
	}
}

func withoutRedisEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "CI", redistest.EnvHarness, redistest.EnvURL, redistest.EnvImage, "PATH", "DOCKER_HOST":
			continue
		}
		out = append(out, kv)
	}
	return out
}

// TestParallelStarts starts servers concurrently: free-port races must not fail them.
func TestParallelStarts(t *testing.T) {
	requirePath(t, redistest.PathProcess)
	const n = 8
	var (
		mu    sync.Mutex
		addrs = map[string]bool{}
	)
	t.Run("group", func(t *testing.T) {
		for i := range n {
			t.Run(string(rune('a'+i)), func(t *testing.T) {
				t.Parallel()
				srv := redistest.Start(t)
				if err := srv.Client(t).Set(t.Context(), srv.Key("k"), srv.Namespace, 0).Err(); err != nil {
					t.Fatal(err)
				}
				mu.Lock()
				addrs[srv.Addr()] = true
				mu.Unlock()
			})
		}
	})
	if len(addrs) != n {
		t.Fatalf("%d parallel servers on %d distinct addresses", n, len(addrs))
	}
}
