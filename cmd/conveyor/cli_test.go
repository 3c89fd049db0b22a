package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func TestConfigPrint(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(file, []byte("worker:\n  concurrency: 4\nretry:\n  schedule: [1s, 5s]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".env"), []byte("REDIS_URL=redis://default:hunter2pass@redis.example.com:6379/0\nREDIS_NAMESPACE=from-dotenv\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	inv := invocation{dir: dir, env: env{"REDIS_NAMESPACE": "agentic-dev", "REDIS_CONSUMER": "worker-1", "CONVEYOR_CONFIG": file}}
	r := mustRun(t, exitOK, inv, "config", "print")
	if strings.Contains(r.stdout, "hunter2pass") {
		t.Fatalf("config print leaks the password:\n%s", r.stdout)
	}
	golden(t, "config-print", strings.ReplaceAll(r.stdout, dir, "<DIR>"))

	r = mustRun(t, exitOK, inv, "--config", file, "config", "print", "--json")
	var entries []struct{ Key, Value, Env, Source string }
	if err := json.Unmarshal([]byte(r.stdout), &entries); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, e := range entries {
		got[e.Key] = e.Value + " | " + e.Source
	}
	for key, want := range map[string]string{
		"redis.url":          "redis://default:xxxxx@redis.example.com:6379/0 | " + filepath.Join(dir, ".env") + " REDIS_URL",
		"redis.namespace":    "agentic-dev | env REDIS_NAMESPACE",
		"worker.concurrency": "4 | file " + file,
		"retry.schedule":     "1s,5s | file " + file,
		"redis.group":        "conveyor | default",
	} {
		if got[key] != want {
			t.Errorf("%s = %q, want %q", key, got[key], want)
		}
	}
}

func TestVersion(t *testing.T) {
	// version needs no configuration, even a broken one.
	r := mustRun(t, exitOK, invocation{env: env{"REDIS_URL": "nonsense"}}, "version")
	if !strings.HasPrefix(r.stdout, "conveyor ") {
		t.Fatalf("version: %q", r.stdout)
	}
	r = mustRun(t, exitOK, invocation{}, "version", "--json")
	var v versionInfo
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || v.Version == "" || v.Go == "" {
		t.Fatalf("version --json: %q (%v)", r.stdout, err)
	}
}

func TestExitCodes(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	tests := []struct {
		name string
		env  env
		args []string
		code int
		want string
	}{
		{"unknown command", nil, []string{"pong"}, exitUsage, `unknown command "pong"`},
		{"unknown flag", nil, []string{"ping", "--colour"}, exitUsage, "unknown flag: --colour"},
		{"bad flag value", nil, []string{"produce", "--topic", "t", "--count", "many"}, exitUsage, "invalid argument"},
		{"unexpected argument", nil, []string{"ping", "extra"}, exitUsage, "unknown command"},
		{"produce without topic", nil, []string{"produce", "--payload", "{}"}, exitUsage, "--topic is required"},
		{"produce without payload", nil, []string{"produce", "--topic", "t"}, exitUsage, "--payload"},
		{"produce invalid JSON", nil, []string{"produce", "--topic", "t", "--payload", "{oops"}, exitUsage, "not valid JSON"},
		{"produce bad header", nil, []string{"produce", "--topic", "t", "--payload", "{}", "--header", "tenant"}, exitUsage, "name=value"},
		{"produce missing file", nil, []string{"produce", "--topic", "t", "--file", missing}, exitUsage, "no such file"},
		{"produce invalid topic", nil, []string{"produce", "--topic", "a{b}", "--payload", "{}"}, exitUsage, `topic "a{b}": a topic name must`},
		{"consume invalid topic", nil, []string{"consume", "--topic", "ok", "--topic", "a}"}, exitUsage, `topic "a}"`},
		{"worker invalid topic", nil, []string{"worker", "--topic", "{a}"}, exitUsage, `topic "{a}"`},
		{"consume without topic", nil, []string{"consume"}, exitUsage, "--topic is required"},
		{"trim without a bound", nil, []string{"trim", "--topic", "t"}, exitUsage, "exactly one of --maxlen"},
		{"trim with both bounds", nil, []string{"trim", "--topic", "t", "--maxlen", "1", "--older-than", "1h"}, exitUsage, "exactly one"},
		{"dlq replay without selection", nil, []string{"dlq", "replay", "--topic", "t"}, exitUsage, "--id ID (repeatable) or --all"},
		{"dlq list without topic", nil, []string{"dlq", "list"}, exitUsage, "--topic is required"},
		{"worker without topics", nil, []string{"worker"}, exitUsage, "--topic"},
		{"worker bad backend", nil, []string{"worker", "--topic", "t", "--backend", "kafka"}, exitUsage, "redis or memory"},
		{"bad config value", env{"CONVEYOR_WORKER_CONCURRENCY": "x"}, []string{"ping"}, exitUsage, "worker.concurrency"},
		{"missing config file", nil, []string{"--config", missing, "ping"}, exitUsage, "no such file"},
		{"unreachable Redis", env{"REDIS_URL": "redis://" + closedPort(t) + "/0"}, []string{"health"}, exitFail, "what to do"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustRun(t, tt.code, invocation{env: tt.env}, tt.args...)
			if !strings.Contains(r.stderr, tt.want) {
				t.Errorf("stderr does not contain %q:\n%s", tt.want, r.stderr)
			}
			if strings.Contains(r.stderr, "conveyor: conveyor: ") {
				t.Errorf("doubled prefix:\n%s", r.stderr)
			}
		})
	}
}

// TestHelp checks that every command documents itself with a summary and
// examples, and that --help exits 0.
func TestHelp(t *testing.T) {
	root := newRootCmd(&app{})
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Short == "" || c.Example == "" {
			t.Errorf("%q has no Short or no Example", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			if !sub.Hidden && sub.Name() != "help" {
				walk(sub)
			}
		}
	}
	walk(root)
	for _, args := range [][]string{{"--help"}, {"dlq", "replay", "--help"}, {"worker", "-h"}} {
		r := mustRun(t, exitOK, invocation{}, args...)
		if !strings.Contains(r.stdout, "Examples:") {
			t.Errorf("conveyor %s: no examples:\n%s", strings.Join(args, " "), r.stdout)
		}
	}
}

func TestPlural(t *testing.T) {
	for _, tt := range []struct {
		n    int
		want string
	}{{0, "0 dead letters"}, {1, "1 dead letter"}, {2, "2 dead letters"}} {
		if got := plural(tt.n, "dead letter", "dead letters"); got != tt.want {
			t.Errorf("plural(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}
