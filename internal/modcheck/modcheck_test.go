package modcheck_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// rootPackages are the packages an application imports to run jobs: the root module.
var rootPackages = []string{
	"job",
	"broker",
	"broker/memory",
	"broker/redis",
	"server",
	"middleware",
	"middleware/redisstore",
	"dashboard",
	"retry",
	"schedule",
}

// maxRequires bounds the require lines, direct and indirect, of an application that
// imports every root package.
const maxRequires = 10

// heavy matches go.sum lines of modules the root packages must not bring, not even
// through their own tests.
var heavy = regexp.MustCompile(`testcontainers|moby|docker|opentelemetry|chromedp|cobra|viper`)

// heavyWithHarness matches go.sum lines of modules the Redis harness must not bring
// either: the command's, config's and the contrib modules' dependencies. (The container
// runtime itself brings OpenTelemetry: moby's client instruments its HTTP transport.)
var heavyWithHarness = regexp.MustCompile(`chromedp|cobra|viper|prometheus`)

const modulePath = "github.com/conveyor-jobs/conveyor"

// TestApplicationDependencies tidies an application module that imports the root
// packages, then the same application with a test that imports the Redis harness.
func TestApplicationDependencies(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go command not found: %v", err)
	}
	repo, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	goLine := goDirective(t, filepath.Join(repo, "go.mod"))

	app := t.TempDir()
	var imports strings.Builder
	for _, p := range rootPackages {
		imports.WriteString("\t_ \"" + modulePath + "/" + p + "\"\n")
	}
	write(t, filepath.Join(app, "main.go"), "package main\n\nimport (\n"+imports.String()+")\n\nfunc main() {}\n")
	write(t, filepath.Join(app, "go.mod"), "module example.com/app\n\n"+goLine+"\n\n"+
		"require "+modulePath+" v0.0.0\n\n"+
		"replace "+modulePath+" => "+repo+"\n\n"+
		"replace "+modulePath+"/broker/redis/redistest => "+filepath.Join(repo, "broker", "redis", "redistest")+"\n")

	tidy := func() (gomod, gosum string) {
		t.Helper()
		cmd := exec.Command(goBin, "mod", "tidy")
		cmd.Dir = app
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go mod tidy: %v\n%s", err, out)
		}
		return read(t, filepath.Join(app, "go.mod")), read(t, filepath.Join(app, "go.sum"))
	}

	gomod, gosum := tidy()
	t.Logf("root packages: %d require lines, %d go.sum lines", requireLines(gomod), lines(gosum))
	if n := requireLines(gomod); n > maxRequires {
		t.Errorf("go.mod has %d require lines, want at most %d:\n%s", n, maxRequires, gomod)
	}
	if got := goDirective(t, filepath.Join(app, "go.mod")); got != goLine {
		t.Errorf("tidy changed the application's %q to %q: a dependency needs a newer Go than the root module states", goLine, got)
	}
	if bad := matching(gosum, heavy); len(bad) > 0 {
		t.Errorf("go.sum has %d lines the root packages should not bring:\n%s", len(bad), strings.Join(bad, "\n"))
	}

	write(t, filepath.Join(app, "main_test.go"), "package main\n\nimport (\n\t\"testing\"\n\n\t\""+modulePath+"/broker/redis/redistest\"\n)\n\n"+
		"func TestRedis(t *testing.T) { _ = redistest.Start(t) }\n")
	gomod, gosum = tidy()
	t.Logf("with the harness: %d require lines, %d go.sum lines", requireLines(gomod), lines(gosum))
	if !strings.Contains(gosum, "github.com/testcontainers/testcontainers-go ") {
		t.Errorf("go.sum lacks testcontainers-go although a test imports the harness:\n%s", gosum)
	}
	if bad := matching(gosum, heavyWithHarness); len(bad) > 0 {
		t.Errorf("go.sum has %d lines the harness should not bring:\n%s", len(bad), strings.Join(bad, "\n"))
	}
}

// goDirective returns the "go 1.N.P" line of a go.mod file.
func goDirective(t *testing.T, path string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^go [0-9.]+$`).FindString(read(t, path))
	if m == "" {
		t.Fatalf("%s has no go line", path)
	}
	return m
}

// requireLines counts the module requirements of a go.mod file, in blocks or not.
func requireLines(gomod string) int {
	n, block := 0, false
	for _, l := range strings.Split(gomod, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case l == "require (":
			block = true
		case block && l == ")":
			block = false
		case block && l != "" && !strings.HasPrefix(l, "//"):
			n++
		case strings.HasPrefix(l, "require "):
			n++
		}
	}
	return n
}

func matching(text string, re *regexp.Regexp) []string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if re.MatchString(l) {
			out = append(out, l)
		}
	}
	return out
}

func lines(text string) int { return strings.Count(text, "\n") }

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func write(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}
