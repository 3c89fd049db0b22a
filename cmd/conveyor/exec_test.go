package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/job"
)

// alive reports whether process pid exists and is not a zombie (an orphan
// waits for init, which may be slow, to reap it).
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return !os.IsNotExist(err)
	}
	// pid (comm) S ...: the state follows the last ')'.
	rest := stat[bytes.LastIndexByte(stat, ')')+1:]
	return !bytes.HasPrefix(bytes.TrimSpace(rest), []byte("Z"))
}

// readPIDs returns the process IDs written, one a line, to file.
func readPIDs(t testing.TB, file string) []int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		pids = append(pids, pid)
	}
	return pids
}

// waitGone waits until none of pids is alive.
func waitGone(t *testing.T, pids []int) {
	t.Helper()
	if len(pids) == 0 {
		t.Fatal("no process IDs to check")
	}
	for _, pid := range pids {
		waitFor(t, fmt.Sprintf("process %d to be gone", pid), func() bool { return !alive(pid) })
	}
}

// lines returns the content of file, or "" when it does not exist.
func fileText(t testing.TB, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

func testJob(payload string) *job.Job {
	return &job.Job{ID: "job-1", Topic: "t", Payload: []byte(payload), Attempt: 1}
}

func TestExecOutcomes(t *testing.T) {
	for _, tt := range []struct {
		name, command string
		want          job.Outcome
		wantErr       string
	}{
		{"exit 0 acks", "cat >/dev/null", job.OutcomeAck, ""},
		{"exit 75 retries", "echo busy >&2; exit 75", job.OutcomeFail, "handler exited with status 75 (temporary failure): busy"},
		{"exit 65 dead-letters", "echo 'bad input' >&2; exit 65", job.OutcomeDeadLetter, "handler exited with status 65 (data error): bad input"},
		{"other exit fails", "exit 3", job.OutcomeFail, "handler exited with status 3"},
		{"command not found fails", "no-such-command-here", job.OutcomeFail, "handler exited with status 127: "},
		{"signal fails", "echo dying >&2; kill -KILL $$", job.OutcomeFail, "handler killed by signal killed: dying"},
		{"signal to a command fails", "sh -c 'kill -TERM $$'", job.OutcomeFail, "handler exited with status 143 (128 + signal 15: terminated)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newExecHandler(execOptions{Command: tt.command})
			err := h.ProcessJob(t.Context(), testJob(`{"k":1}`))
			if o, _ := job.Classify(err); o != tt.want {
				t.Errorf("outcome %v (%v), want %v", o, err, tt.want)
			}
			if tt.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.wantErr)) {
				t.Errorf("error %q, want it to start with %q", err, tt.wantErr)
			}
		})
	}
}

// TestExecInput checks the payload on stdin and the job's fields in the
// environment, with header names mapped and the worker's own job variables
// not leaking through.
func TestExecInput(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("CONVEYOR_HEADER_STALE", "from the worker's environment")
	t.Setenv("CONVEYOR_DEADLINE", "stale")
	h := newExecHandler(execOptions{Command: `cat > "$OUT/stdin"; env | grep -E '^CONVEYOR_(JOB_ID|TOPIC|ATTEMPT|ENQUEUED_AT(_MS)?|DEADLINE|HEADERS?_?[A-Z0-9_]*)=' | sort > "$OUT/env"`})
	t.Setenv("OUT", dir)
	enq := time.Date(2026, 3, 4, 5, 6, 7, 890_000_000, time.FixedZone("x", 3600))
	j := &job.Job{ID: "id-7", Topic: "orchestrate", Payload: []byte("line 1\nline 2\x00binary"), Attempt: 3, EnqueuedAt: enq,
		Headers: map[string]string{"tenant": "acme", "x-trace.id": "abc", "X_TRACE_ID": "def", "nul": "a\x00b", "ünï": "u"}}
	if err := h.ProcessJob(t.Context(), j); err != nil {
		t.Fatal(err)
	}
	if got := fileText(t, filepath.Join(dir, "stdin")); got != string(j.Payload) {
		t.Errorf("stdin = %q, want %q", got, j.Payload)
	}
	want := strings.Join([]string{
		"CONVEYOR_ATTEMPT=3",
		"CONVEYOR_ENQUEUED_AT=2026-03-04T04:06:07.890Z",
		"CONVEYOR_ENQUEUED_AT_MS=" + strconv.FormatInt(enq.UnixMilli(), 10),
		"CONVEYOR_HEADERS=" + `{"X_TRACE_ID":"def","nul":"a\u0000b","tenant":"acme","x-trace.id":"abc","ünï":"u"}`,
		"CONVEYOR_HEADER_TENANT=acme",
		"CONVEYOR_HEADER_X_TRACE_ID=def",
		"CONVEYOR_HEADER__N_=u",
		"CONVEYOR_JOB_ID=id-7",
		"CONVEYOR_TOPIC=orchestrate",
	}, "\n") + "\n"
	if got := fileText(t, filepath.Join(dir, "env")); got != want {
		t.Errorf("environment:\n%s\nwant:\n%s", got, want)
	}
}

func TestExecDeadlineInEnvironment(t *testing.T) {
	dir := t.TempDir()
	h := newExecHandler(execOptions{Command: `printf %s "$CONVEYOR_DEADLINE" > "` + dir + `/deadline"`})
	deadline := time.Now().Add(time.Hour)
	ctx, cancel := context.WithDeadline(t.Context(), deadline)
	defer cancel()
	if err := h.ProcessJob(ctx, testJob("{}")); err != nil {
		t.Fatal(err)
	}
	if got, want := fileText(t, filepath.Join(dir, "deadline")), deadline.UTC().Format(envTimeLayout); got != want {
		t.Errorf("CONVEYOR_DEADLINE = %q, want %q", got, want)
	}
}

// TestExecStderrTail checks that a failure keeps the last 4 KiB of stderr.
func TestExecStderrTail(t *testing.T) {
	h := newExecHandler(execOptions{Command: `head -c 10000 /dev/zero | tr '\0' x >&2; echo >&2; echo the-end >&2; exit 1`})
	err := h.ProcessJob(t.Context(), testJob("{}"))
	var ee *execError
	if !errors.As(err, &ee) {
		t.Fatalf("error %v is not an execError", err)
	}
	full := strings.Repeat("x", 10000) + "\nthe-end\n"
	if want := "…" + strings.TrimSpace(full[len(full)-stderrTail:]); ee.Stderr != want {
		t.Errorf("stderr tail %.20q…%q (%d bytes), want the last %d bytes of the output", ee.Stderr,
			ee.Stderr[max(len(ee.Stderr)-20, 0):], len(ee.Stderr), stderrTail)
	}
}

func TestTailBuffer(t *testing.T) {
	var tb tailBuffer
	_, _ = tb.Write([]byte("  short\n"))
	if got := tb.String(); got != "short" {
		t.Errorf("String() = %q", got)
	}
	// A multi-byte character cut in half at the start is dropped.
	_, _ = tb.Write([]byte("é" + strings.Repeat("y", stderrTail-1)))
	if got := tb.String(); got != "…"+strings.Repeat("y", stderrTail-1) {
		t.Errorf("String() = %.20q…, %d bytes", got, len(got))
	}
}

// TestExecOutputLogged checks that each line of output is logged with the
// job's ID, long lines in pieces.
func TestExecOutputLogged(t *testing.T) {
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	h := newExecHandler(execOptions{Command: `echo out-1; echo err-1 >&2; head -c 5000 /dev/zero | tr '\0' z`, Logger: log})
	if err := h.ProcessJob(t.Context(), testJob("{}")); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	for _, want := range []string{
		`msg="handler output" job_id=job-1 topic=t attempt=1 stream=stdout line=out-1`,
		`msg="handler output" job_id=job-1 topic=t attempt=1 stream=stderr line=err-1`,
		"line=" + strings.Repeat("z", maxOutputLine) + "\n",
		"line=" + strings.Repeat("z", 5000-maxOutputLine) + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %.80q:\n%.500s", want, out)
		}
	}
}

// TestExecTimeoutKillsGroup gives a job that ignores SIGTERM, and whose
// background child does too, a deadline: both get SIGKILL after the grace.
func TestExecTimeoutKillsGroup(t *testing.T) {
	dir := t.TempDir()
	pids := filepath.Join(dir, "pids")
	h := newExecHandler(execOptions{
		Command:   `trap '' TERM; sleep 1000 & echo $$ $! > "` + pids + `.tmp"; mv "` + pids + `.tmp" "` + pids + `"; wait`,
		KillGrace: 10 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- h.ProcessJob(ctx, testJob("{}")) }()
	waitFor(t, "the job to start", func() bool { return fileText(t, pids) != "" })
	cancel()
	err := <-errc
	var ee *execError
	if !errors.As(err, &ee) || ee.Signal != syscall.SIGKILL {
		t.Fatalf("error %v, want death by SIGKILL", err)
	}
	waitGone(t, readPIDs(t, pids))
}

// TestExecKillsLeftovers checks that what a job leaves running in its group
// is killed when the job's process exits.
func TestExecKillsLeftovers(t *testing.T) {
	dir := t.TempDir()
	pids := filepath.Join(dir, "pids")
	h := newExecHandler(execOptions{Command: `sleep 1000 >/dev/null 2>&1 & echo $! > "` + pids + `"`})
	if err := h.ProcessJob(t.Context(), testJob("{}")); err != nil {
		t.Fatal(err)
	}
	waitGone(t, readPIDs(t, pids))
}

// TestExecTerminate checks that Terminate forwards SIGTERM to running jobs,
// whose exit status then settles them, and snoozes the jobs that come later.
func TestExecTerminate(t *testing.T) {
	dir := t.TempDir()
	started := filepath.Join(dir, "started")
	h := newExecHandler(execOptions{Command: `trap 'echo got TERM >&2; exit 75' TERM; echo $$ > "` + started + `"; sleep 1000 & wait`})
	errc := make(chan error, 1)
	go func() { errc <- h.ProcessJob(t.Context(), testJob("{}")) }()
	waitFor(t, "the job to start", func() bool { return fileText(t, started) != "" })
	h.Terminate()
	err := <-errc
	if err == nil || err.Error() != "handler exited with status 75 (temporary failure): got TERM" {
		t.Errorf("error %v, want exit 75 after TERM", err)
	}
	waitGone(t, readPIDs(t, started))

	err = h.ProcessJob(t.Context(), testJob("{}"))
	if o, d := job.Classify(err); o != job.OutcomeSnooze || d != 0 || !errors.Is(err, errStopping) {
		t.Errorf("a job after Terminate: %v (%v %v), want a snooze", err, o, d)
	}
}

// TestExecLargePayloadUnread checks that a process that exits without
// reading a payload larger than a pipe holds does not block the handler.
func TestExecLargePayloadUnread(t *testing.T) {
	h := newExecHandler(execOptions{Command: "exit 0"})
	if err := h.ProcessJob(t.Context(), testJob(strings.Repeat("p", 1<<20))); err != nil {
		t.Fatal(err)
	}
}

func TestHeaderEnvName(t *testing.T) {
	for in, want := range map[string]string{
		"tenant":       "CONVEYOR_HEADER_TENANT",
		"Content-Type": "CONVEYOR_HEADER_CONTENT_TYPE",
		"trace.id":     "CONVEYOR_HEADER_TRACE_ID",
		"9lives":       "CONVEYOR_HEADER_9LIVES",
		"é":            "CONVEYOR_HEADER__",
		"":             "",
	} {
		if got := headerEnvName(in); got != want {
			t.Errorf("headerEnvName(%q) = %q, want %q", in, got, want)
		}
	}
}
