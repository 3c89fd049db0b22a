package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// waitFor polls cond every 20ms until it holds, failing the test after 15s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waitForWithin(t, 15*time.Second, what, cond)
}

// waitForWithin is waitFor failing the test after d.
func waitForWithin(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startWorker runs conveyor worker args in the background and returns its
// live stderr and a channel that yields its result.
func startWorker(t *testing.T, ctx context.Context, e env, args ...string) (*syncBuffer, <-chan result) {
	t.Helper()
	stderr := &syncBuffer{}
	dir := t.TempDir()
	done := make(chan result, 1)
	go func() {
		done <- conveyor(t, invocation{env: e, ctx: ctx, stderr: stderr, dir: dir}, append([]string{"worker"}, args...)...)
	}()
	waitFor(t, "the worker to start", func() bool {
		select {
		case r := <-done:
			t.Fatalf("worker exited %d:\n%s", r.code, r.stderr)
		default:
		}
		return strings.Contains(stderr.String(), "worker started")
	})
	return stderr, done
}

var addrRE = regexp.MustCompile(`"?addr"?[=:]"?http://([0-9.:]+)`)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// metric returns the value of the sample line starting with name (labels
// included), or -1.
func metric(body, name string) float64 {
	for _, l := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(l, name+" "); ok {
			var v float64
			if _, err := fmt.Sscan(rest, &v); err == nil {
				return v
			}
		}
	}
	return -1
}

// TestWorker runs the worker against Redis with quick retries and checks the
// demonstration handler's outcomes, the probes and the metrics.
func TestWorker(t *testing.T) {
	e, _ := redisEnv(t)
	e = e.with("CONVEYOR_RETRY_SCHEDULE", "50ms", "CONVEYOR_RETRY_MAX_ATTEMPTS", "2", "CONVEYOR_RETRY_JITTER", "0",
		"CONVEYOR_LOG_FORMAT", "json")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stderr, done := startWorker(t, ctx, e, "--demo", "--topic", "orchestrate", "--metrics-addr", "127.0.0.1:0", "--concurrency", "2")
	m := addrRE.FindStringSubmatch(stderr.String())
	if m == nil {
		t.Fatalf("no metrics address in the log:\n%s", stderr.String())
	}
	base := "http://" + strings.Trim(m[1], `"`)

	inv := invocation{env: e}
	for _, p := range []string{`{"prompt":"hello"}`, `{"fail":true}`, `{"permanent":true}`, `[1,2]`} {
		mustRun(t, exitOK, inv, "produce", "--topic", "orchestrate", "--payload", p)
	}
	var body string
	waitFor(t, "one ack and three dead letters in /metrics", func() bool {
		_, body = get(t, base+"/metrics")
		return metric(body, `conveyor_jobs_acked_total{topic="orchestrate"}`) == 1 &&
			metric(body, `conveyor_jobs_dead_lettered_total{topic="orchestrate"}`) == 3
	})
	if metric(body, `conveyor_jobs_retried_total{topic="orchestrate"}`) != 1 {
		t.Errorf("want one retry of the failing job:\n%s", body)
	}
	for _, probe := range []string{"/healthz", "/readyz"} {
		if code, b := get(t, base+probe); code != http.StatusOK {
			t.Errorf("%s = %d %s", probe, code, b)
		}
	}

	r := mustRun(t, exitOK, inv, "dlq", "list", "--topic", "orchestrate", "--json")
	var dls []deadLetterView
	if err := json.Unmarshal([]byte(r.stdout), &dls); err != nil {
		t.Fatal(err)
	}
	reasons := map[string]int{}
	for _, dl := range dls {
		reasons[dl.Job.Failure.Reason] = dl.Job.Attempt
	}
	if want := map[string]int{"exhausted": 2, "permanent": 1, "undecodable": 1}; fmt.Sprint(reasons) != fmt.Sprint(want) {
		t.Errorf("dead letters (reason: attempts) = %v, want %v", reasons, want)
	}
	if !strings.Contains(stderr.String(), `"prompt":"hello"`) {
		t.Errorf("the handler did not log the prompt:\n%s", stderr.String())
	}

	cancel()
	res := <-done
	if res.code != exitOK || !strings.Contains(res.stderr, "worker stopped") {
		t.Fatalf("worker exit %d:\n%s", res.code, res.stderr)
	}
}

// TestWorkerDrainsOnSIGTERM sends a real SIGTERM while a job runs: the worker
// stops fetching, lets the job finish and acknowledges it before exiting 0.
func TestWorkerDrainsOnSIGTERM(t *testing.T) {
	e, _ := redisEnv(t)
	stderr, done := startWorker(t, t.Context(), e, "--demo", "--topic", "slow")
	inv := invocation{env: e}
	mustRun(t, exitOK, inv, "produce", "--topic", "slow", "--payload", `{"prompt":"take your time","sleep":"700ms"}`)
	waitFor(t, "the job to start", func() bool { return strings.Contains(stderr.String(), "handling job") })

	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var res result
	select {
	case res = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the worker did not stop on SIGTERM")
	}
	if res.code != exitOK {
		t.Fatalf("worker exit %d:\n%s", res.code, res.stderr)
	}
	r := mustRun(t, exitOK, inv, "health", "--topic", "slow", "--json")
	var infos []struct{ Length, Pending int64 }
	if err := json.Unmarshal([]byte(r.stdout), &infos); err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || infos[0].Length != 0 || infos[0].Pending != 0 {
		t.Fatalf("after the drain the job must be acknowledged and gone: %+v\n%s", infos, res.stderr)
	}
}

func TestWorkerWarnsAboutOtherNamespaces(t *testing.T) {
	e, _ := redisEnv(t)
	other := e["REDIS_NAMESPACE"] + "-other"
	mustRun(t, exitOK, invocation{env: e.with("REDIS_NAMESPACE", other)}, "produce", "--topic", "orchestrate", "--payload", `{}`)
	ctx, cancel := context.WithCancel(t.Context())
	stderr, done := startWorker(t, ctx, e, "--demo", "--topic", "orchestrate")
	cancel()
	<-done
	if !strings.Contains(stderr.String(), "exists in others") || !strings.Contains(stderr.String(), other) {
		t.Fatalf("no warning about namespace %s:\n%s", other, stderr.String())
	}
}

// TestWorkerMemoryBackend checks that the memory backend starts without
// Redis, logs no Redis settings, and that the queue metrics of a topic with
// no jobs yet refresh without a warning.
func TestWorkerMemoryBackend(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stderr, done := startWorker(t, ctx, env{}, "--backend", "memory", "--exec", "true", "--topic", "demo", "--metrics-addr", "127.0.0.1:0")
	m := addrRE.FindStringSubmatch(stderr.String())
	if m == nil {
		t.Fatalf("no metrics address in the log:\n%s", stderr.String())
	}
	var body string
	waitFor(t, "the first queue metrics refresh", func() bool {
		_, body = get(t, "http://"+m[1]+"/metrics")
		return metric(body, "conveyor_queue_last_refresh_timestamp_seconds") > 0 || metric(body, "conveyor_queue_refresh_errors_total") > 0
	})
	if n := metric(body, "conveyor_queue_refresh_errors_total"); n != 0 {
		t.Errorf("conveyor_queue_refresh_errors_total = %v, want 0", n)
	}
	if v := metric(body, `conveyor_queue_length{topic="demo"}`); v != 0 {
		t.Errorf(`conveyor_queue_length{topic="demo"} = %v, want 0`, v)
	}
	cancel()
	res := <-done
	if res.code != exitOK {
		t.Fatalf("worker exit %d:\n%s", res.code, res.stderr)
	}
	started := ""
	for _, l := range strings.Split(res.stderr, "\n") {
		if strings.Contains(l, "worker started") {
			started = l
		}
	}
	for _, s := range []string{"url=", "namespace=", "group=", "consumer="} {
		if strings.Contains(started, s) {
			t.Errorf("the memory backend logs %s:\n%s", s, started)
		}
	}
	if !strings.Contains(started, "backend=memory") || !strings.Contains(started, "topics=[demo]") || !strings.Contains(started, "exec=true") {
		t.Errorf("worker started line: %s", started)
	}
	if strings.Contains(res.stderr, "WARN") {
		t.Errorf("warnings on the memory backend:\n%s", res.stderr)
	}
}

// TestWorkerCannotConnect checks that a connection error is printed once,
// with advice, and with the URL as the user wrote it (password hidden).
func TestWorkerCannotConnect(t *testing.T) {
	url := "redis://user:s3cret@" + closedPort(t) + "/0"
	r := mustRun(t, exitFail, invocation{env: env{"REDIS_URL": url}}, "worker", "--demo", "--topic", "t")
	want := "conveyor: conveyor/redis: connect to " + strings.Replace(url, "s3cret", "xxxxx", 1) + ": "
	if !strings.HasPrefix(r.stderr, want) || strings.Count(r.stderr, "connect to") != 1 || strings.Count(r.stderr, "what to do:") != 1 {
		t.Fatalf("stderr does not start with %q or repeats the error:\n%s", want, r.stderr)
	}
	if strings.Contains(r.stderr, "s3cret") || strings.Contains(r.stderr, "dial_timeout") {
		t.Fatalf("stderr shows the password or the dial timeout:\n%s", r.stderr)
	}
}

// TestWorkerAbandonsJobs checks the exit when the shutdown timeout passes
// with a job still running: status 1, the error printed once with one
// "conveyor: " prefix.
func TestWorkerAbandonsJobs(t *testing.T) {
	e, _ := redisEnv(t)
	e = e.with("CONVEYOR_WORKER_SHUTDOWN_TIMEOUT", "50ms")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stderr, done := startWorker(t, ctx, e, "--demo", "--topic", "slow")
	mustRun(t, exitOK, invocation{env: e}, "produce", "--topic", "slow", "--payload", `{"sleep":"1h"}`)
	waitFor(t, "the job to start", func() bool { return strings.Contains(stderr.String(), "handling job") })
	cancel()
	res := <-done
	if res.code != exitFail {
		t.Fatalf("worker exit %d, want %d:\n%s", res.code, exitFail, res.stderr)
	}
	if !strings.Contains(res.stderr, "\nconveyor: jobs abandoned at shutdown: 1 job(s)") || strings.Contains(res.stderr, "conveyor: conveyor: ") {
		t.Fatalf("stderr:\n%s", res.stderr)
	}
}
