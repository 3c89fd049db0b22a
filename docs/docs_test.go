// Package docs_test checks the manual: README.md and every docs/*.md.
//
// # Links
//
// Every relative link and image, [text](target) or ![alt](target), outside code must name
// a file or directory that exists, relative to the page. A #fragment must name a heading
// of the target page (or of the page itself, for a bare #fragment), slugged as GitHub
// slugs headings: the heading's text without Markdown, lower-cased; letters, digits, '-'
// and '_' kept, spaces turned into '-', everything else dropped; a repeated slug gets -1,
// -2, … Links with a scheme (https:, mailto:) are not followed.
//
// # Go blocks
//
// Every ```go block is one of three kinds:
//
//  1. A complete file, whose first token is the package clause. It is compiled as it
//     is, as a test file when its package name ends in _test.
//
//  2. An excerpt, preceded by a comment <!-- example: DIR.Name --> on the line before
//     the fence. DIR, relative to the repository root, must hold a _test.go file that
//     declares func Name, Name must start with Example, and every line of the block
//     must be a line of that function, compared without indentation and trailing
//     // comments (lines that are only a comment may elide code). go test runs the
//     Example the excerpt comes from.
//
//  3. Any other fragment: statements, compiled as the body of
//
//     func _(ctx context.Context, PARAMS) error
//
//     where PARAMS is the text of an optional <!-- with: PARAMS --> comment on the line
//     before the fence, such as "b broker.Broker, rec middleware.Recorder". A body that
//     does not end in a return statement gets "return nil". The fragment declares no
//     imports: each package name it uses that appears in importPaths is imported.
//
// Blocks are compiled by the go command run from the repository root, so they see the
// same module, or go.work workspace, as the code. Each block becomes a package of its own
// under docs/internal/snippets/ that exists only in an -overlay; //line directives make
// compile errors name the page and line of the block.
package docs_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// importPaths are the packages a fragment (kind 3) may use without importing them,
// by the name it uses.
var importPaths = map[string]string{
	"context": "context",
	"errors":  "errors",
	"fmt":     "fmt",
	"http":    "net/http",
	"json":    "encoding/json",
	"log":     "log",
	"os":      "os",
	"signal":  "os/signal",
	"slog":    "log/slog",
	"sync":    "sync",
	"syscall": "syscall",
	"time":    "time",

	"broker":       "github.com/conveyor-jobs/conveyor/broker",
	"config":       "github.com/conveyor-jobs/conveyor/config",
	"conveyorotel": "github.com/conveyor-jobs/conveyor/contrib/otel",
	"conveyorprom": "github.com/conveyor-jobs/conveyor/contrib/prometheus",
	"dashboard":    "github.com/conveyor-jobs/conveyor/dashboard",
	"job":          "github.com/conveyor-jobs/conveyor/job",
	"memory":       "github.com/conveyor-jobs/conveyor/broker/memory",
	"middleware":   "github.com/conveyor-jobs/conveyor/middleware",
	"redis":        "github.com/conveyor-jobs/conveyor/broker/redis",
	"redisstore":   "github.com/conveyor-jobs/conveyor/middleware/redisstore",
	"redistest":    "github.com/conveyor-jobs/conveyor/broker/redis/redistest",
	"retry":        "github.com/conveyor-jobs/conveyor/retry",
	"server":       "github.com/conveyor-jobs/conveyor/server",
	"workflow":     "github.com/conveyor-jobs/conveyor/workflow",

	"backoff":    "github.com/cenkalti/backoff/v4",
	"goredis":    "github.com/redis/go-redis/v9",
	"prometheus": "github.com/prometheus/client_golang/prometheus",
	"promhttp":   "github.com/prometheus/client_golang/prometheus/promhttp",
	"trace":      "go.opentelemetry.io/otel/trace",
}

// page is one Markdown file of the manual.
type page struct {
	path  string // relative to the repository root, with slashes
	lines []string
}

// block is one ```go block of a page.
type block struct {
	page   string // relative to the repository root
	line   int    // 1-based line of the block's first code line
	code   string
	marker string // "example", "with" or ""
	arg    string // the marker's text
}

// root returns the repository root: the parent of this package's directory.
func root(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "README.md")); err != nil {
		t.Fatalf("repository root %s: %v", dir, err)
	}
	return dir
}

// pages reads README.md and docs/*.md.
func pages(t *testing.T, root string) []page {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	names = append([]string{filepath.Join(root, "README.md")}, names...)
	var ps []page
	for _, name := range names {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		rel, err := filepath.Rel(root, name)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, page{path: filepath.ToSlash(rel), lines: strings.Split(string(data), "\n")})
	}
	if len(ps) < 2 {
		t.Fatalf("found %d pages; want README.md and docs/*.md", len(ps))
	}
	return ps
}

// prose returns p's lines outside fenced code blocks, with inline code spans blanked
// out, keyed by their 1-based line numbers.
func prose(p page) map[int]string {
	out := map[int]string{}
	fence := ""
	for i, l := range p.lines {
		trimmed := strings.TrimSpace(l)
		if fence != "" {
			if strings.HasPrefix(trimmed, fence) {
				fence = ""
			}
			continue
		}
		if strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~") {
			fence = trimmed[:3]
			continue
		}
		out[i+1] = codeSpan.ReplaceAllString(l, "")
	}
	return out
}

var (
	codeSpan = regexp.MustCompile("`[^`]*`")
	link     = regexp.MustCompile(`\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	scheme   = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*:`)
	mdLink   = regexp.MustCompile(`\[([^\]]*)\]\([^)]*\)`)
)

// anchors returns the GitHub anchor slugs of p's headings.
func anchors(p page) map[string]bool {
	seen := map[string]int{}
	out := map[string]bool{}
	lines := prose(p)
	for i, l := range p.lines {
		if _, ok := lines[i+1]; !ok || !strings.HasPrefix(l, "#") {
			continue // inside a code block, or not a heading
		}
		text, ok := strings.CutPrefix(strings.TrimLeft(l, "#"), " ")
		if !ok {
			continue
		}
		s := slug(text)
		if n := seen[s]; n > 0 {
			out[s+"-"+strconv.Itoa(n)] = true
		} else {
			out[s] = true
		}
		seen[s]++
	}
	return out
}

// slug is GitHub's anchor for a heading's text.
func slug(heading string) string {
	heading = mdLink.ReplaceAllString(heading, "$1")
	heading = strings.ReplaceAll(heading, "`", "")
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	return b.String()
}

func TestSlug(t *testing.T) {
	for in, want := range map[string]string{
		"Operating queues with `conveyor`": "operating-queues-with-conveyor",
		"What happens when…":               "what-happens-when",
		"Mounting /metrics":                "mounting-metrics",
		"Delivery, leases and recovery":    "delivery-leases-and-recovery",
		"Benchmarks: `conveyor bench`":     "benchmarks-conveyor-bench",
		"Rate_limit and [link](x.md)":      "rate_limit-and-link",
	} {
		if got := slug(in); got != want {
			t.Errorf("slug(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestLinks checks every relative link and image of the manual.
func TestLinks(t *testing.T) {
	root := root(t)
	ps := pages(t, root)
	byPath := map[string]page{}
	for _, p := range ps {
		byPath[p.path] = p
	}
	anchorsOf := map[string]map[string]bool{}
	targetPage := func(rel string) (page, bool) {
		if p, ok := byPath[rel]; ok {
			return p, true
		}
		data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(rel)))
		if err != nil {
			return page{}, false
		}
		p := page{path: rel, lines: strings.Split(string(data), "\n")}
		byPath[rel] = p
		return p, true
	}
	checked := 0
	for _, p := range ps {
		lines := prose(p)
		for n := 1; n <= len(p.lines); n++ {
			for _, m := range link.FindAllStringSubmatch(lines[n], -1) {
				target := m[1]
				if scheme.MatchString(target) {
					continue
				}
				checked++
				where := fmt.Sprintf("%s:%d: link %s", p.path, n, target)
				file, frag, _ := strings.Cut(target, "#")
				rel := p.path
				if file != "" {
					rel = filepath.ToSlash(filepath.Clean(filepath.Join(filepath.Dir(p.path), file)))
					if strings.HasPrefix(rel, "../") {
						t.Errorf("%s: leaves the repository", where)
						continue
					}
					if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(rel))); err != nil {
						t.Errorf("%s: %s does not exist", where, rel)
						continue
					}
				}
				if frag == "" {
					continue
				}
				if !strings.HasSuffix(rel, ".md") {
					t.Errorf("%s: a #fragment on a file that is not Markdown", where)
					continue
				}
				tp, ok := targetPage(rel)
				if !ok {
					t.Errorf("%s: cannot read %s", where, rel)
					continue
				}
				if anchorsOf[rel] == nil {
					anchorsOf[rel] = anchors(tp)
				}
				if !anchorsOf[rel][frag] {
					known := make([]string, 0, len(anchorsOf[rel]))
					for a := range anchorsOf[rel] {
						known = append(known, a)
					}
					slices.Sort(known)
					t.Errorf("%s: %s has no heading #%s (its anchors: %s)", where, rel, frag, strings.Join(known, " "))
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no relative links found: the link pattern is broken")
	}
}

var marker = regexp.MustCompile(`^<!--\s*(example|with):\s*(.*?)\s*-->$`)

// blocks returns every ```go block of ps, with the marker on the line before it.
func blocks(ps []page) []block {
	var out []block
	for _, p := range ps {
		for i := 0; i < len(p.lines); i++ {
			if strings.TrimSpace(p.lines[i]) != "```go" {
				continue
			}
			b := block{page: p.path, line: i + 2}
			if i > 0 {
				if m := marker.FindStringSubmatch(strings.TrimSpace(p.lines[i-1])); m != nil {
					b.marker, b.arg = m[1], m[2]
				}
			}
			var code []string
			for i++; i < len(p.lines) && strings.TrimSpace(p.lines[i]) != "```"; i++ {
				code = append(code, p.lines[i])
			}
			b.code = strings.Join(code, "\n") + "\n"
			out = append(out, b)
		}
	}
	return out
}

// isFile reports whether code is a complete Go file: its first token is "package".
func isFile(code string) bool {
	sc := bufio.NewScanner(strings.NewReader(code))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "//") {
			continue
		}
		return strings.HasPrefix(l, "package ")
	}
	return false
}

// TestGoBlocks compiles every Go block of the manual, or checks that the Example it
// names exists.
func TestGoBlocks(t *testing.T) {
	root := root(t)
	bs := blocks(pages(t, root))
	if len(bs) == 0 {
		t.Fatal("no Go blocks found")
	}
	gen := t.TempDir()
	overlay := map[string]string{}
	var pkgs, testPkgs []string
	for i, b := range bs {
		where := fmt.Sprintf("%s:%d", b.page, b.line)
		var src []byte
		var err error
		name := "snippet.go"
		switch {
		case b.marker == "example":
			checkExample(t, root, where, b.arg, b.code)
			continue
		case isFile(b.code):
			if b.marker != "" {
				t.Errorf("%s: a complete file takes no <!-- %s: --> comment", where, b.marker)
			}
			src = []byte(fmt.Sprintf("//line %s:%d\n%s", b.page, b.line, b.code))
			if f, perr := parser.ParseFile(token.NewFileSet(), "", b.code, parser.PackageClauseOnly); perr == nil && strings.HasSuffix(f.Name.Name, "_test") {
				name = "snippet_test.go"
			}
		default:
			src, err = wrap(b)
			if err != nil {
				t.Errorf("%s: %v", where, err)
				continue
			}
		}
		dir := filepath.Join(root, "docs", "internal", "snippets", fmt.Sprintf("b%03d", i))
		file := filepath.Join(gen, fmt.Sprintf("b%03d.go", i))
		if err := os.WriteFile(file, src, 0o644); err != nil {
			t.Fatal(err)
		}
		overlay[filepath.Join(dir, name)] = file
		rel := "./" + filepath.ToSlash(mustRel(t, root, dir))
		if name == "snippet_test.go" {
			testPkgs = append(testPkgs, rel)
		} else {
			pkgs = append(pkgs, rel)
		}
	}
	if len(overlay) == 0 {
		return
	}
	ov, err := json.Marshal(map[string]any{"Replace": overlay})
	if err != nil {
		t.Fatal(err)
	}
	ovFile := filepath.Join(gen, "overlay.json")
	if err := os.WriteFile(ovFile, ov, 0o644); err != nil {
		t.Fatal(err)
	}
	gocmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to compile the manual's Go blocks: %v", err)
	}
	run := func(args ...string) {
		cmd := exec.Command(gocmd, args...)
		cmd.Dir = root
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
	}
	if len(pkgs) > 0 {
		run(append([]string{"build", "-overlay=" + ovFile, "-o", os.DevNull}, pkgs...)...)
	}
	for _, p := range testPkgs {
		run("test", "-vet=off", "-c", "-overlay="+ovFile, "-o", os.DevNull, p)
	}
}

// wrap turns a fragment into a file: its statements become the body of a function
// whose parameters are ctx and the block's <!-- with: --> text, and the packages it
// uses are imported.
func wrap(b block) ([]byte, error) {
	if b.marker != "" && b.marker != "with" {
		return nil, fmt.Errorf("unknown marker %q", b.marker)
	}
	params := "ctx context.Context"
	if b.arg != "" {
		params += ", " + b.arg
	}
	body := fmt.Sprintf("func _(%s) error {\n//line %s:%d\n%s}\n", params, b.page, b.line, b.code)
	f, err := parser.ParseFile(token.NewFileSet(), b.page, "package snippet\n"+body, 0)
	if err != nil {
		return nil, fmt.Errorf("not a complete file, and not statements: %v", err)
	}
	fn := f.Decls[0].(*ast.FuncDecl)
	if n := len(fn.Body.List); n == 0 {
		return nil, fmt.Errorf("empty block")
	} else if _, ok := fn.Body.List[n-1].(*ast.ReturnStmt); !ok {
		body = strings.TrimSuffix(body, "}\n") + "return nil\n}\n"
	}
	var imports []string
	for _, id := range f.Unresolved {
		if path, ok := importPaths[id.Name]; ok && !slices.Contains(imports, id.Name+" "+strconv.Quote(path)) {
			imports = append(imports, id.Name+" "+strconv.Quote(path))
		}
	}
	slices.Sort(imports)
	return []byte(fmt.Sprintf("package snippet\n\nimport (\n%s\n)\n\n%s", strings.Join(imports, "\n"), body)), nil
}

// checkExample checks that ref, "DIR.Name", names an Example function declared in a
// _test.go file of DIR, and that every line of code is one of its lines.
func checkExample(t *testing.T, root, where, ref, code string) {
	t.Helper()
	i := strings.LastIndex(ref, ".")
	if i < 0 {
		t.Errorf("%s: <!-- example: %s -->: want DIR.ExampleName", where, ref)
		return
	}
	dir, name := ref[:i], ref[i+1:]
	if !strings.HasPrefix(name, "Example") {
		t.Errorf("%s: <!-- example: %s -->: %s is not an Example function", where, ref, name)
		return
	}
	files, err := filepath.Glob(filepath.Join(root, filepath.FromSlash(dir), "*_test.go"))
	if err != nil || len(files) == 0 {
		t.Errorf("%s: <!-- example: %s -->: no test files in %s", where, ref, dir)
		return
	}
	fset := token.NewFileSet()
	for _, file := range files {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, file, src, parser.SkipObjectResolution)
		if err != nil {
			t.Errorf("%s: %v", where, err)
			return
		}
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Recv != nil || fd.Name.Name != name {
				continue
			}
			tf := fset.File(fd.Pos())
			body := string(src[tf.Offset(fd.Pos()):tf.Offset(fd.End())])
			have := map[string]bool{}
			for _, l := range strings.Split(body, "\n") {
				have[codeLine(l)] = true
			}
			for n, l := range strings.Split(code, "\n") {
				if c := codeLine(l); c != "" && !have[c] {
					t.Errorf("%s: line %d of the block, %q, is not a line of %s", where, n+1, strings.TrimSpace(l), ref)
				}
			}
			return
		}
	}
	t.Errorf("%s: <!-- example: %s -->: no func %s in %s/*_test.go", where, ref, name, dir)
}

// codeLine returns l without indentation and without a trailing // comment ("" for a
// line that is blank or only a comment).
func codeLine(l string) string {
	l = strings.TrimSpace(l)
	if strings.HasPrefix(l, "//") {
		return ""
	}
	if i := strings.LastIndex(l, " //"); i >= 0 {
		l = strings.TrimSpace(l[:i])
	}
	return l
}

func mustRel(t *testing.T, base, target string) string {
	t.Helper()
	rel, err := filepath.Rel(base, target)
	if err != nil {
		t.Fatal(err)
	}
	return rel
}
