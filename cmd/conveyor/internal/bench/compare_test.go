package bench

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files of the tests")

// The comparison of two small reports, one with a row the other lacks on
// each side, matches testdata/compare.golden (go test -update rewrites it).
func TestWriteComparison(t *testing.T) {
	before, err := ReadReport(filepath.Join("testdata", "compare-old.json"))
	if err != nil {
		t.Fatal(err)
	}
	after, err := ReadReport(filepath.Join("testdata", "compare-new.json"))
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if err := WriteComparison(&got, before, after); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "compare.golden")
	if *update {
		if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Errorf("comparison differs from %s:\n%s\nwant:\n%s", golden, got.Bytes(), want)
	}
}

func TestReadReportErrors(t *testing.T) {
	dir := t.TempDir()
	notJSON := filepath.Join(dir, "table.txt")
	if err := os.WriteFile(notJSON, []byte("conveyor bench: n=100\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{filepath.Join(dir, "missing.json"), notJSON} {
		if r, err := ReadReport(path); err == nil {
			t.Errorf("ReadReport(%s) = %+v, want an error", path, r)
		}
	}
}
