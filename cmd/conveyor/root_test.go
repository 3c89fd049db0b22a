package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestInvalidURLIsConfigError checks that a Redis URL the configuration
// accepts but the Redis broker rejects as malformed (a unix:// socket URL)
// is a configuration error, exit 2, for every command that opens the
// broker: the message is the broker's, password redacted, without a hint
// to read the command's help.
func TestInvalidURLIsConfigError(t *testing.T) {
	const password = "s3cret-pw"
	e := env{"REDIS_URL": "unix://default:" + password + "@/tmp/conveyor-test.sock"}
	const want = "conveyor: conveyor/redis: invalid Redis URL unix://default:xxxxx@/tmp/conveyor-test.sock: scheme must be redis:// or rediss://\n"
	for _, args := range [][]string{
		{"health"},
		{"worker", "--topic", "t", "--demo"},
		{"produce", "--topic", "t", "--payload", "{}"},
		{"consume", "--topic", "t"},
		{"dlq", "list", "--topic", "t"},
		{"trim", "--topic", "t", "--maxlen", "1", "--dry-run"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			r := mustRun(t, exitUsage, invocation{env: e}, args...)
			if r.stderr != want {
				t.Errorf("stderr = %q, want %q", r.stderr, want)
			}
		})
	}
}

// TestMemoryBackendRefused checks that the commands that work on jobs other
// processes publish or hold fail with exit 2 on the memory backend, saying
// why and what to set (where the setting came from), without opening a
// broker; worker --backend memory is covered by TestWorkerMemoryBackend.
func TestMemoryBackendRefused(t *testing.T) {
	commands := [][]string{
		{"health"},
		{"dlq", "list", "--topic", "t"},
		{"dlq", "show", "--topic", "t", "--id", "1-0"},
		{"dlq", "replay", "--topic", "t", "--all"},
		{"dlq", "purge", "--topic", "t", "--all", "--dry-run"},
		{"trim", "--topic", "t", "--maxlen", "1"},
		{"cancel", "--topic", "t", "--id", "x"},
		{"dashboard", "--addr", "127.0.0.1:0"},
		{"produce", "--topic", "t", "--payload", "{}"},
		{"consume", "--topic", "t", "--timeout", "1s"},
		{"consumers", "list"},
		{"consumers", "prune", "--idle", "1h"},
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "conveyor.yaml")
	if err := os.WriteFile(file, []byte("backend: memory\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dotenv := t.TempDir()
	if err := os.WriteFile(filepath.Join(dotenv, ".env"), []byte("QUEUE_BACKEND=memory\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sources := []struct {
		name     string
		inv      invocation
		from     string
		wantsFix string
	}{
		{"env", invocation{env: env{"QUEUE_BACKEND": "memory"}}, "(env QUEUE_BACKEND)", "set QUEUE_BACKEND=redis"},
		{"file", invocation{env: env{"CONVEYOR_CONFIG": file}}, "(file " + file + ")", "set backend: redis in " + file},
		{".env", invocation{dir: dotenv}, "(" + filepath.Join(dotenv, ".env") + " QUEUE_BACKEND)", "set QUEUE_BACKEND=redis in " + filepath.Join(dotenv, ".env")},
	}
	for _, src := range sources {
		for _, args := range commands {
			t.Run(src.name+" "+strings.Join(args, " "), func(t *testing.T) {
				r := mustRun(t, exitUsage, src.inv, args...)
				want := "conveyor: conveyor " + strings.Join(args[:commandDepth(args)], " ") +
					" needs the Redis backend, but the backend is memory " + src.from +
					": the memory backend holds jobs only inside the process that runs it, so this command would reach only a new, empty broker of its own that no other process shares; " +
					src.wantsFix + "\n"
				if r.stderr != want {
					t.Errorf("stderr = %q\nwant     %q", r.stderr, want)
				}
				if r.stdout != "" {
					t.Errorf("stdout = %q", r.stdout)
				}
			})
		}
	}
}

// commandDepth returns how many of args name the command (dlq list,
// consumers prune: 2).
func commandDepth(args []string) int {
	if args[0] == "dlq" || args[0] == "consumers" {
		return 2
	}
	return 1
}
