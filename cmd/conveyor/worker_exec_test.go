package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// execDeadLetters returns the dead letters of topic by job ID.
func execDeadLetters(t *testing.T, e env, topic string) map[string]deadLetterRecord {
	t.Helper()
	r := mustRun(t, exitOK, invocation{env: e}, "dlq", "list", "--topic", topic, "--json")
	var dls []struct {
		Job deadLetterRecord `json:"job"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &dls); err != nil {
		t.Fatalf("%v:\n%s", err, r.stdout)
	}
	out := map[string]deadLetterRecord{}
	for _, dl := range dls {
		out[dl.Job.ID] = dl.Job
	}
	return out
}

// deadLetterRecord is what the tests read of a dead letter.
type deadLetterRecord struct {
	ID      string `json:"id"`
	Attempt int    `json:"attempt"`
	Failure struct {
		Error  string `json:"error"`
		Reason string `json:"reason"`
	} `json:"failure"`
}

// topicEmpty reports whether topic has no job left in its stream.
func topicEmpty(t *testing.T, e env, topic string) bool {
	t.Helper()
	r := mustRun(t, exitOK, invocation{env: e}, "health", "--topic", topic, "--json")
	var infos []struct{ Length, Pending, Delayed int64 }
	if err := json.Unmarshal([]byte(r.stdout), &infos); err != nil {
		t.Fatal(err)
	}
	return len(infos) == 1 && infos[0].Length == 0 && infos[0].Pending == 0 && infos[0].Delayed == 0
}

// writeScript writes an executable script to dir/name and returns its path.
func writeScript(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// stopWorker cancels the worker and checks that it exits 0.
func stopWorker(t *testing.T, cancel context.CancelFunc, done <-chan result) result {
	t.Helper()
	cancel()
	res := <-done
	if res.code != exitOK {
		t.Fatalf("worker exit %d:\n%s", res.code, res.stderr)
	}
	return res
}

// TestWorkerExecShellScript runs a shell script per job and checks the
// job's fields in its environment and the outcome of each exit status: 0
// acks, 65 dead-letters at once, 75 and others retry then dead-letter, each
// with the script's stderr as the error.
func TestWorkerExecShellScript(t *testing.T) {
	e, _ := redisEnv(t)
	e = e.with("CONVEYOR_RETRY_SCHEDULE", "10ms", "CONVEYOR_RETRY_MAX_ATTEMPTS", "2", "CONVEYOR_RETRY_JITTER", "0")
	dir := t.TempDir()
	script := writeScript(t, dir, "handle.sh", `#!/bin/sh
code=$(cat)
echo "$CONVEYOR_TOPIC $CONVEYOR_ATTEMPT $CONVEYOR_HEADER_TENANT $CONVEYOR_ENQUEUED_AT" >> "`+dir+`/$CONVEYOR_JOB_ID"
echo "handling $CONVEYOR_JOB_ID"
echo "exiting $code on attempt $CONVEYOR_ATTEMPT" >&2
exit "$code"
`)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stderr, done := startWorker(t, ctx, e, "--topic", "jobs", "--exec", script+" --unused-arg", "--concurrency", "2",
		"--metrics-addr", "127.0.0.1:0")
	m := addrRE.FindStringSubmatch(stderr.String())
	if m == nil {
		t.Fatalf("no metrics address in the log:\n%s", stderr.String())
	}
	codes := map[string]string{"ok": "0", "data": "65", "temp": "75", "other": "3"}
	for id, code := range codes {
		mustRun(t, exitOK, invocation{env: e}, "produce", "--topic", "jobs", "--id", id, "--payload", code, "-H", "tenant=acme")
	}
	var dls map[string]deadLetterRecord
	waitFor(t, "three dead letters and an empty topic", func() bool {
		dls = execDeadLetters(t, e, "jobs")
		return len(dls) == 3 && topicEmpty(t, e, "jobs")
	})
	_, body := get(t, "http://"+m[1]+"/metrics")
	for name, want := range map[string]float64{"acked": 1, "retried": 2, "dead_lettered": 3} {
		if got := metric(body, `conveyor_jobs_`+name+`_total{topic="jobs"}`); got != want {
			t.Errorf("conveyor_jobs_%s_total = %v, want %v", name, got, want)
		}
	}
	res := stopWorker(t, cancel, done)

	want := map[string]deadLetterRecord{}
	for id, w := range map[string]struct {
		attempt        int
		reason, errMsg string
	}{
		"data":  {1, "permanent", "handler exited with status 65 (data error): exiting 65 on attempt 1"},
		"temp":  {2, "exhausted", "handler exited with status 75 (temporary failure): exiting 75 on attempt 2"},
		"other": {2, "exhausted", "handler exited with status 3: exiting 3 on attempt 2"},
	} {
		r := deadLetterRecord{ID: id, Attempt: w.attempt}
		r.Failure.Reason, r.Failure.Error = w.reason, w.errMsg
		want[id] = r
	}
	for id, w := range want {
		if got := dls[id]; got.Attempt != w.Attempt || got.Failure.Reason != w.Failure.Reason || !strings.HasSuffix(got.Failure.Error, w.Failure.Error) {
			t.Errorf("dead letter %s = %+v, want %+v", id, got, w)
		}
	}
	if _, ok := dls["ok"]; ok {
		t.Error("the job that exited 0 was dead-lettered")
	}
	for id, attempts := range map[string]int{"ok": 1, "data": 1, "temp": 2, "other": 2} {
		lines := strings.Split(strings.TrimSpace(fileText(t, filepath.Join(dir, id))), "\n")
		if len(lines) != attempts {
			t.Errorf("job %s ran %d times, want %d", id, len(lines), attempts)
			continue
		}
		f := strings.Fields(lines[len(lines)-1])
		if len(f) != 4 || f[0] != "jobs" || f[1] != strconv.Itoa(attempts) || f[2] != "acme" {
			t.Errorf("job %s saw topic, attempt, tenant, enqueued at = %q", id, f)
		} else if _, err := time.Parse(time.RFC3339Nano, f[3]); err != nil {
			t.Errorf("CONVEYOR_ENQUEUED_AT: %v", err)
		}
	}
	if !strings.Contains(res.stderr, "stream=stdout line=\"handling ok\"") {
		t.Errorf("the script's stdout is not in the log:\n%s", res.stderr)
	}
}

// TestWorkerExecPython runs a Python handler that decodes its JSON payload,
// reads a header and refuses a bad payload with exit 65.
func TestWorkerExecPython(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed: the Python handler cannot run")
	}
	e, _ := redisEnv(t)
	dir := t.TempDir()
	script := writeScript(t, dir, "handle.py", `import json, os, sys

job = json.load(sys.stdin)
if "prompt" not in job:
    print("no prompt in", job, file=sys.stderr)
    sys.exit(65)  # EX_DATAERR: dead-letter, do not retry
with open(os.path.join(sys.argv[1], os.environ["CONVEYOR_JOB_ID"]), "w") as f:
    json.dump({"prompt": job["prompt"], "tenant": os.environ.get("CONVEYOR_HEADER_TENANT"),
               "headers": json.loads(os.environ["CONVEYOR_HEADERS"])}, f)
`)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	_, done := startWorker(t, ctx, e, "--topic", "py", "--exec", py+" "+script+" "+dir)
	inv := invocation{env: e}
	mustRun(t, exitOK, inv, "produce", "--topic", "py", "--id", "good", "--payload", `{"prompt":"hello"}`, "-H", "tenant=acme")
	mustRun(t, exitOK, inv, "produce", "--topic", "py", "--id", "bad", "--payload", `{"other":1}`)
	var dls map[string]deadLetterRecord
	waitFor(t, "the bad job dead-lettered and the topic empty", func() bool {
		dls = execDeadLetters(t, e, "py")
		return len(dls) == 1 && topicEmpty(t, e, "py")
	})
	stopWorker(t, cancel, done)
	if got := dls["bad"].Failure.Error; got != `handler exited with status 65 (data error): no prompt in {'other': 1}` {
		t.Errorf("dead letter error %q", got)
	}
	want := `{"prompt": "hello", "tenant": "acme", "headers": {"tenant": "acme"}}`
	if got := fileText(t, filepath.Join(dir, "good")); got != want {
		t.Errorf("the handler wrote %s, want %s", got, want)
	}
}

// TestWorkerExecTimeout gives a job that ignores SIGTERM a timeout: its
// process group is killed after the grace and the job fails with the
// timeout and the process's stderr.
func TestWorkerExecTimeout(t *testing.T) {
	e, _ := redisEnv(t)
	e = e.with("CONVEYOR_RETRY_MAX_ATTEMPTS", "1")
	dir := t.TempDir()
	pids := filepath.Join(dir, "pids")
	script := writeScript(t, dir, "stubborn.sh", `#!/bin/sh
trap 'echo ignoring TERM >&2' TERM
(trap '' TERM; exec sleep 1000) &
echo $$ $! > "`+pids+`"
echo started >&2
while :; do wait; done
`)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	_, done := startWorker(t, ctx, e, "--topic", "slow", "--exec", script, "--timeout", "200ms", "--kill-grace", "100ms")
	mustRun(t, exitOK, invocation{env: e}, "produce", "--topic", "slow", "--id", "stuck", "--payload", "{}")
	var dls map[string]deadLetterRecord
	waitFor(t, "the job dead-lettered", func() bool {
		dls = execDeadLetters(t, e, "slow")
		return len(dls) == 1
	})
	waitGone(t, readPIDs(t, pids))
	stopWorker(t, cancel, done)
	got := dls["stuck"].Failure.Error
	if !strings.Contains(got, "timed out after 200ms") || !strings.Contains(got, "handler killed by signal killed: started\nignoring TERM") {
		t.Errorf("dead letter error %q", got)
	}
}

// TestWorkerExecDrainsOnSIGTERM sends the worker a real SIGTERM while two
// jobs run: the worker forwards SIGTERM to both process groups and waits
// for them; the one that handles SIGTERM by finishing is acknowledged, the
// one that dies of it is retried, and no process survives the worker.
func TestWorkerExecDrainsOnSIGTERM(t *testing.T) {
	e, _ := redisEnv(t)
	e = e.with("CONVEYOR_RETRY_SCHEDULE", "1h")
	dir := t.TempDir()
	script := writeScript(t, dir, "graceful.sh", `#!/bin/sh
mode=$(cat)
if [ "$mode" = '"finish"' ]; then trap 'echo finishing >&2; exit 0' TERM; fi
sleep 1000 &
echo $$ $! > "`+dir+`/$CONVEYOR_JOB_ID.tmp"
mv "`+dir+`/$CONVEYOR_JOB_ID.tmp" "`+dir+`/$CONVEYOR_JOB_ID"
wait
`)
	stderr, done := startWorker(t, t.Context(), e, "--topic", "drain", "--exec", script, "--concurrency", "2")
	inv := invocation{env: e}
	mustRun(t, exitOK, inv, "produce", "--topic", "drain", "--id", "finish", "--payload", `"finish"`)
	mustRun(t, exitOK, inv, "produce", "--topic", "drain", "--id", "die", "--payload", `"die"`)
	waitFor(t, "both jobs to start", func() bool {
		return fileText(t, filepath.Join(dir, "finish")) != "" && fileText(t, filepath.Join(dir, "die")) != ""
	})
	pids := append(readPIDs(t, filepath.Join(dir, "finish")), readPIDs(t, filepath.Join(dir, "die"))...)

	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var res result
	select {
	case res = <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("the worker did not stop on SIGTERM:\n%s", stderr.String())
	}
	if res.code != exitOK {
		t.Fatalf("worker exit %d:\n%s", res.code, res.stderr)
	}
	waitGone(t, pids) // killed before the worker returned; dying takes a moment
	if !strings.Contains(res.stderr, "line=finishing") ||
		!strings.Contains(res.stderr, "handler exited with status 143 (128 + signal 15: terminated)") ||
		!strings.Contains(res.stderr, "acked=1 retried=1") {
		t.Errorf("want one job acknowledged after SIGTERM and one retried:\n%s", res.stderr)
	}
	r := mustRun(t, exitOK, inv, "health", "--topic", "drain", "--json")
	var infos []struct{ Length, Pending, Delayed int64 }
	if err := json.Unmarshal([]byte(r.stdout), &infos); err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || infos[0].Length != 0 || infos[0].Pending != 0 || infos[0].Delayed != 1 {
		t.Errorf("after the drain want only the retried job, delayed: %+v", infos)
	}
}

// TestWorkerNeedsAHandler checks that worker refuses to run without --exec
// or --demo, saying how to run handlers, and that --demo says what it does.
func TestWorkerNeedsAHandler(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--topic", "t"}, "--exec 'CMD'"},
		{[]string{"--topic", "t", "--exec", "true", "--demo"}, "give --exec or --demo, not both"},
		{[]string{"--topic", "t", "--exec", " "}, "--exec needs a command"},
		{[]string{"--topic", "t", "--exec", "true", "--kill-grace", "-1s"}, "--kill-grace must not be negative"},
	} {
		r := mustRun(t, exitUsage, invocation{}, append([]string{"worker", "--backend", "memory"}, tt.args...)...)
		if !strings.Contains(r.stderr, tt.want) {
			t.Errorf("worker %s: stderr lacks %q:\n%s", strings.Join(tt.args, " "), tt.want, r.stderr)
		}
	}
	r := mustRun(t, exitUsage, invocation{}, "worker", "--backend", "memory", "--topic", "t")
	for _, want := range []string{"server.New", "examples/orchestrate-worker", "--demo"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("the refusal does not mention %s:\n%s", want, r.stderr)
		}
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stderr, done := startWorker(t, ctx, env{}, "--backend", "memory", "--topic", "t", "--demo")
	stopWorker(t, cancel, done)
	if n := strings.Count(stderr.String(), "acknowledges every job it can decode"); n != 1 {
		t.Errorf("--demo says %d times that it acknowledges every job:\n%s", n, stderr.String())
	}
}

// TestWorkerExecThroughput runs 1,000 jobs through --exec /bin/true with 16
// at a time and logs the rate.
func TestWorkerExecThroughput(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 1,000 processes")
	}
	const n = 1000
	e, _ := redisEnv(t)
	e = e.with("CONVEYOR_LOG_LEVEL", "warn")
	mustRun(t, exitOK, invocation{env: e}, "produce", "--topic", "bulk", "--count", strconv.Itoa(n), "--payload", "{}")
	stderr := &syncBuffer{}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		done <- conveyor(t, invocation{env: e, ctx: ctx, stderr: stderr}, "worker", "--topic", "bulk", "--exec", "/bin/true", "--concurrency", "16")
	}()
	waitForWithin(t, 5*time.Minute, "every job acknowledged", func() bool { return topicEmpty(t, e, "bulk") })
	elapsed := time.Since(start)
	stopWorker(t, cancel, done)
	t.Logf("%d jobs through --exec /bin/true, 16 at a time: %.0f jobs/s (%v)", n, n/elapsed.Seconds(), elapsed.Round(time.Millisecond))
	if dls := execDeadLetters(t, e, "bulk"); len(dls) != 0 {
		t.Errorf("%d dead letters", len(dls))
	}
}
