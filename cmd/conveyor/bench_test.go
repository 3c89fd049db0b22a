package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/conveyor-jobs/conveyor/broker/redis/redistest"
)

func TestBenchJSON(t *testing.T) {
	srv := redistest.Start(t)
	var stdout, stderr bytes.Buffer
	a := &app{stdout: &stdout, stderr: &stderr, stdin: strings.NewReader("")}
	code := execute(context.Background(), a, []string{"bench", "-n", "1000", "--runs", "1", "--json",
		"--scenarios", "floor,process,memory", "--redis-url", srv.URL()})
	if code != exitOK {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr.String())
	}
	var rep struct {
		N         int `json:"n"`
		Scenarios []struct {
			Name         string   `json:"name"`
			JobsPerSec   float64  `json:"jobs_per_sec"`
			RatioToFloor *float64 `json:"ratio_to_floor"`
			Runs         []struct {
				Jobs      int   `json:"jobs"`
				Processed int64 `json:"processed"`
			} `json:"runs"`
		} `json:"scenarios"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil { // fails on anything after the object
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, stdout.String())
	}
	if rep.N != 1000 {
		t.Errorf("n = %d, want 1000", rep.N)
	}
	var names []string
	for _, s := range rep.Scenarios {
		names = append(names, s.Name)
		if s.JobsPerSec <= 0 || s.RatioToFloor == nil || len(s.Runs) != 1 || s.Runs[0].Jobs != 1000 {
			t.Errorf("row %s: jobs/s %v, ratio %v, runs %+v", s.Name, s.JobsPerSec, s.RatioToFloor, s.Runs)
		}
	}
	if got, want := strings.Join(names, ","), "floor-publish,floor,floor-workers,process,memory"; got != want {
		t.Errorf("rows %s, want %s", got, want)
	}
	if !strings.Contains(stderr.String(), "run 1/1 process") {
		t.Errorf("no progress on stderr:\n%s", stderr.String())
	}
}

func TestBenchBadFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown scenario", []string{"bench", "--scenarios", "nope"}, `unknown scenario "nope"`},
		{"payload too small", []string{"bench", "--payload-size", "8"}, "--payload-size 8"},
		{"negative runs", []string{"bench", "--runs", "-1"}, "--runs -1"},
		{"against alone", []string{"bench", "--against", "new.json"}, "--against needs --compare"},
		{"compare with json", []string{"bench", "--compare", "internal/bench/testdata/compare-old.json", "--json"}, "--json and --compare do not combine"},
		{"compare a missing file", []string{"bench", "--compare", "missing.json", "--against", "internal/bench/testdata/compare-new.json"}, "missing.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			a := &app{stdout: &stdout, stderr: &stderr, stdin: strings.NewReader("")}
			if code := execute(context.Background(), a, tc.args); code != exitUsage {
				t.Errorf("exit code %d, want %d", code, exitUsage)
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr %q does not mention %q", stderr.String(), tc.want)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout not empty: %q", stdout.String())
			}
		})
	}
}

// --compare with --against prints the comparison of the two files, the
// same table the bench package's golden file holds, and runs nothing.
func TestBenchCompareFiles(t *testing.T) {
	var stdout, stderr bytes.Buffer
	a := &app{stdout: &stdout, stderr: &stderr, stdin: strings.NewReader("")}
	code := execute(context.Background(), a, []string{"bench",
		"--compare", "internal/bench/testdata/compare-old.json", "--against", "internal/bench/testdata/compare-new.json"})
	if code != exitOK {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr.String())
	}
	want, err := os.ReadFile("internal/bench/testdata/compare.golden")
	if err != nil {
		t.Fatal(err)
	}
	if stdout.String() != string(want) {
		t.Errorf("stdout:\n%s\nwant:\n%s", stdout.String(), want)
	}
	if stderr.Len() != 0 {
		t.Errorf("stderr not empty (something ran?): %q", stderr.String())
	}
}

// --compare alone runs the scenarios and compares the run with the file:
// the memory row's old figure is the file's, its new one this run's.
func TestBenchCompareWithRun(t *testing.T) {
	var stdout, stderr bytes.Buffer
	a := &app{stdout: &stdout, stderr: &stderr, stdin: strings.NewReader("")}
	code := execute(context.Background(), a, []string{"bench", "-n", "1000", "--runs", "1", "--scenarios", "memory",
		"--compare", "internal/bench/testdata/compare-old.json"})
	if code != exitOK {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr.String())
	}
	out := stdout.String()
	row := regexp.MustCompile(`(?m)^\s*memory\s+jobs/s\s+2,100,000\s+[0-9,]+\s+[+-][0-9.]+%$`)
	if !row.MatchString(out) || !strings.Contains(out, "new: ") || !strings.Contains(out, " n=1000 runs=1 ") {
		t.Errorf("no comparison of the memory row with this run:\n%s", out)
	}
	if !strings.Contains(stderr.String(), "run 1/1 memory") {
		t.Errorf("no progress on stderr:\n%s", stderr.String())
	}
}
