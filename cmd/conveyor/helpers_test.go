package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/conveyor-jobs/conveyor/broker/redis/redistest"
	"github.com/conveyor-jobs/conveyor/internal/logtest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/cli")

func TestMain(m *testing.M) {
	// After a failed dial go-redis probes the server from a goroutine of its
	// pool that sleeps a second between probes and ends at the first probe
	// after the client is closed: the tests that dial dead or unreachable
	// servers leave one behind for up to a dial timeout plus a second.
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial"))
}

// env is a fake environment.
type env map[string]string

func (e env) lookup(k string) (string, bool) { v, ok := e[k]; return v, ok }

// with returns a copy of e with kv (name, value, name, value…) set.
func (e env) with(kv ...string) env {
	out := make(env, len(e)+len(kv)/2)
	for k, v := range e {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

// result is what one conveyor run produced.
type result struct {
	code           int
	stdout, stderr string
}

// syncBuffer is a buffer safe for a writer and a concurrent reader.
type syncBuffer = logtest.Buffer

// invocation describes one run of conveyor in-process.
type invocation struct {
	env   env
	stdin string
	dir   string // holds .env; default a fresh temp dir
	ctx   context.Context
	// stderr, when set, receives stderr as it is written.
	stderr *syncBuffer
	// terminal makes stderr count as a terminal (progress bars).
	terminal bool
	// stdinTerminal makes stdin count as a terminal (questions); stdin
	// then holds the answers.
	stdinTerminal bool
}

// conveyor runs the CLI in-process with args and returns its exit code and
// output.
func conveyor(t *testing.T, inv invocation, args ...string) result {
	t.Helper()
	var stdout bytes.Buffer
	stderr := inv.stderr
	if stderr == nil {
		stderr = &syncBuffer{}
	}
	dir := inv.dir
	if dir == "" {
		dir = t.TempDir()
	}
	ctx := inv.ctx
	if ctx == nil {
		ctx = t.Context()
	}
	a := &app{
		stdout:          &stdout,
		stderr:          stderr,
		stdin:           strings.NewReader(inv.stdin),
		lookupEnv:       inv.env.lookup,
		dir:             dir,
		isTerminal:      func(io.Writer) bool { return inv.terminal },
		stdinIsTerminal: func() bool { return inv.stdinTerminal },
	}
	code := execute(ctx, a, args)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// redisEnv starts a Redis for the test and returns an environment pointing
// conveyor at it with a fresh namespace and a fixed consumer name.
func redisEnv(t *testing.T) (env, *redistest.Server) {
	t.Helper()
	srv := redistest.Start(t)
	return env{
		"REDIS_URL":             srv.URL(),
		"REDIS_NAMESPACE":       srv.Namespace,
		"REDIS_CONSUMER":        "cli-test",
		"CONVEYOR_METRICS_ADDR": "",
	}, srv
}

// mustRun runs conveyor and fails the test unless it exits with want.
func mustRun(t *testing.T, want int, inv invocation, args ...string) result {
	t.Helper()
	r := conveyor(t, inv, args...)
	if r.code != want {
		t.Fatalf("conveyor %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, want, r.stdout, r.stderr)
	}
	return r
}

var normalizers = []struct {
	re   *regexp.Regexp
	repl string
}{
	{regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`), "<UUID>"},
	{regexp.MustCompile(`\b\d{13}-\d+\b`), "<ENTRY-ID>"},
	{regexp.MustCompile(`\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})`), "<TIME>"},
	{regexp.MustCompile(`\b\d+(\.\d+)?(ns|µs|us|ms|s|m|h)\b`), "<DURATION>"},
	{regexp.MustCompile(`(127\.0\.0\.1|localhost|\[::1\]):\d+`), "<HOST>:<PORT>"},
	{regexp.MustCompile(`test-[0-9a-f]{16}`), "<NAMESPACE>"},
	{regexp.MustCompile(`Redis \d+\.\d+\.\d+`), "Redis <VERSION>"},
}

// normalize replaces what changes from run to run (IDs, times, durations,
// ports, namespaces) with placeholders, and collapses runs of spaces inside
// lines (placeholders are not as wide as the values, so table columns move);
// indentation is kept.
func normalize(s string) string {
	for _, n := range normalizers {
		s = n.re.ReplaceAllString(s, n.repl)
	}
	// Collapse runs of spaces: placeholder widths differ from the values'.
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		indent := l[:len(l)-len(strings.TrimLeft(l, " "))]
		lines[i] = indent + strings.Join(strings.Fields(l), " ")
	}
	return strings.Join(lines, "\n")
}

// golden compares normalize(got) with testdata/cli/name.golden, rewriting it
// under -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("..", "..", "testdata", "cli", name+".golden")
	got = normalize(got)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/conveyor -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (go test ./cmd/conveyor -update rewrites it)\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}
