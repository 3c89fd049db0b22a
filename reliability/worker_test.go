package reliability

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker/redis"
	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/retry"
	"github.com/conveyor-jobs/conveyor/server"
	"github.com/conveyor-jobs/conveyor/workflow"
)

// The test binary doubles as a worker program: when envWorker is set,
// TestMain runs workerMain instead of the tests. The worker is configured
// through the environment variables below and reports what its handler does
// as lines appended to the file named by envLog:
//
//	ready <pid>
//	start <job id> <attempt> <pid>
//	done <job id> <pid>
//	exit <pid> <Run's error or "ok">
//
// Appends of one short line are atomic, and lines written before a SIGKILL
// survive it (they are in the kernel's page cache), so several workers can
// share one file and the test can read it at any time.
const (
	envWorker      = "CONVEYOR_RELIABILITY_WORKER" // "1": run workerMain
	envURL         = "CONVEYOR_RW_URL"
	envNamespace   = "CONVEYOR_RW_NAMESPACE"
	envConsumer    = "CONVEYOR_RW_CONSUMER"
	envTopic       = "CONVEYOR_RW_TOPIC"
	envLease       = "CONVEYOR_RW_LEASE"          // duration
	envDeliveries  = "CONVEYOR_RW_MAX_DELIVERIES" // int
	envConcurrency = "CONVEYOR_RW_CONCURRENCY"    // int
	envShutdown    = "CONVEYOR_RW_SHUTDOWN"       // duration
	envBehavior    = "CONVEYOR_RW_BEHAVIOR"       // see behavior constants
	envWork        = "CONVEYOR_RW_WORK"           // duration: most random work per job
	envLog         = "CONVEYOR_RW_LOG"            // report file
)

// Worker handler behaviours.
const (
	// behaveBlock: every handler reports start and then blocks until its
	// context ends (the test kills the process meanwhile).
	behaveBlock = "block"
	// behaveWork: handlers do random work up to envWork and succeed.
	behaveWork = "work"
	// behaveCrash: like work, but a job whose payload is "crash" kills the
	// whole process with SIGKILL, every time it is delivered.
	behaveCrash = "crash"
	// behaveBatch: like work, for the members of a batch: a payload
	// "transient" fails its first attempt, "permanent" fails for good, any
	// other succeeds with its job ID as its result. Jobs of the topic
	// <topic>-callback are the batch's callback: they report "callback
	// <batch> <succeeded> <dead> <total>" and succeed.
	behaveBatch = "batch"
)

// workerConfig configures a worker subprocess.
type workerConfig struct {
	URL, Namespace, Consumer, Topic string
	Lease                           time.Duration
	MaxDeliveries                   int
	Concurrency                     int
	ShutdownTimeout                 time.Duration
	Behavior                        string
	Work                            time.Duration
	Log                             string
}

func (c workerConfig) env() []string {
	return append(os.Environ(),
		envWorker+"=1",
		envURL+"="+c.URL,
		envNamespace+"="+c.Namespace,
		envConsumer+"="+c.Consumer,
		envTopic+"="+c.Topic,
		envLease+"="+c.Lease.String(),
		envDeliveries+"="+strconv.Itoa(c.MaxDeliveries),
		envConcurrency+"="+strconv.Itoa(c.Concurrency),
		envShutdown+"="+c.ShutdownTimeout.String(),
		envBehavior+"="+c.Behavior,
		envWork+"="+c.Work.String(),
		envLog+"="+c.Log,
	)
}

// workerProc is a running worker subprocess.
type workerProc struct {
	t      testing.TB
	cfg    workerConfig
	cmd    *exec.Cmd
	stderr string
	exited chan struct{}
	err    error // cmd.Wait's result, set before exited is closed
}

// startWorker starts the test binary as a worker with cfg. The process is
// killed and waited for when the test ends; its stderr (the server's logs) is
// kept in a file and printed when the test fails.
func startWorker(t testing.TB, cfg workerConfig) *workerProc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("worker: %v", err)
	}
	stderr := filepath.Join(t.TempDir(), cfg.Consumer+".log")
	f, err := os.Create(stderr)
	if err != nil {
		t.Fatalf("worker: %v", err)
	}
	defer f.Close() // the child has its own descriptor
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = cfg.env()
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatalf("worker: start: %v", err)
	}
	w := &workerProc{t: t, cfg: cfg, cmd: cmd, stderr: stderr, exited: make(chan struct{})}
	go func() { // joined by Wait and by the cleanup below
		w.err = cmd.Wait()
		close(w.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-w.exited
		if t.Failed() {
			out, _ := os.ReadFile(stderr)
			t.Logf("worker %s (pid %d) output:\n%s", cfg.Consumer, cmd.Process.Pid, tailLines(string(out), 60))
		}
	})
	return w
}

// Pid returns the worker's process ID.
func (w *workerProc) Pid() int { return w.cmd.Process.Pid }

// Signal sends sig to the worker.
func (w *workerProc) Signal(sig os.Signal) {
	w.t.Helper()
	if err := w.cmd.Process.Signal(sig); err != nil {
		w.t.Fatalf("worker %d: signal %v: %v", w.Pid(), sig, err)
	}
}

// Wait waits up to timeout for the worker to exit and returns cmd.Wait's
// error (nil for exit status 0). It fails the test if the worker is still
// running at the deadline.
func (w *workerProc) Wait(timeout time.Duration) error {
	w.t.Helper()
	select {
	case <-w.exited:
		return w.err
	case <-time.After(timeout):
		w.t.Fatalf("worker %s (pid %d) still running after %v", w.cfg.Consumer, w.Pid(), timeout)
		return nil
	}
}

// Exited reports whether the worker has exited.
func (w *workerProc) Exited() bool {
	select {
	case <-w.exited:
		return true
	default:
		return false
	}
}

// Output returns the worker's stderr so far.
func (w *workerProc) Output() string {
	out, _ := os.ReadFile(w.stderr)
	return string(out)
}

// report is the parsed content of a worker report file.
type report struct {
	Ready  int            // "ready" lines
	Starts map[string]int // deliveries per job ID
	Done   map[string]int // successful runs per job ID
	Exits  []string       // "exit" lines' results
	Events []event        // start and done lines in order
	// Callbacks are the "callback" lines: batch, succeeded, dead, total.
	Callbacks []string
}

// event is one start or done line.
type event struct {
	Kind    string // "start" or "done"
	ID      string
	Attempt int // start lines only
	Pid     int
}

// readReport parses the report file at path; a missing file is an empty
// report.
func readReport(t testing.TB, path string) report {
	t.Helper()
	r := report{Starts: map[string]int{}, Done: map[string]int{}}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return r
	}
	if err != nil {
		t.Fatalf("read report: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		switch fields[0] {
		case "ready":
			r.Ready++
		case "start":
			if len(fields) == 4 {
				r.Starts[fields[1]]++
				attempt, _ := strconv.Atoi(fields[2])
				pid, _ := strconv.Atoi(fields[3])
				r.Events = append(r.Events, event{Kind: "start", ID: fields[1], Attempt: attempt, Pid: pid})
			}
		case "done":
			if len(fields) == 3 {
				r.Done[fields[1]]++
				pid, _ := strconv.Atoi(fields[2])
				r.Events = append(r.Events, event{Kind: "done", ID: fields[1], Pid: pid})
			}
		case "callback":
			r.Callbacks = append(r.Callbacks, strings.Join(fields[1:5], " "))
		case "exit":
			r.Exits = append(r.Exits, strings.Join(fields[2:], " "))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read report: %v", err)
	}
	return r
}

// reporter appends report lines to a file.
type reporter struct {
	mu sync.Mutex
	f  *os.File
}

func (r *reporter) line(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	// One write per line: O_APPEND makes it atomic between processes.
	_, _ = r.f.WriteString(fmt.Sprintf(format, args...) + "\n")
}

// workerMain is the worker program: the signal handling a CLI does
// (signal.NotifyContext on SIGINT and SIGTERM), a Redis broker, a server with
// one handler for the topic, Run until the signal, then exit 0 after a
// graceful drain (1 on any error).
func workerMain() int {
	getenv := os.Getenv
	dur := func(name string) time.Duration {
		d, _ := time.ParseDuration(getenv(name))
		return d
	}
	num := func(name string) int {
		n, _ := strconv.Atoi(getenv(name))
		return n
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f, err := os.OpenFile(getenv(envLog), os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		logger.Error("open report", "error", err)
		return 2
	}
	defer f.Close()
	rep := &reporter{f: f}
	pid := os.Getpid()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	b, err := redis.Open(getenv(envURL), &redis.Options{
		Namespace:     getenv(envNamespace),
		Consumer:      getenv(envConsumer),
		Lease:         dur(envLease),
		MaxDeliveries: num(envDeliveries),
		Block:         100 * time.Millisecond,
		ClaimInterval: 100 * time.Millisecond,
		Logger:        logger,
	})
	if err != nil {
		logger.Error("open broker", "error", err)
		return 2
	}
	defer b.Close()

	behavior, work := getenv(envBehavior), dur(envWork)
	mux := job.NewMux()
	mux.HandleFunc(getenv(envTopic), func(ctx context.Context, j *job.Job) error {
		rep.line("start %s %d %d", j.ID, j.Attempt, pid)
		switch {
		case behavior == behaveBlock:
			<-ctx.Done()
			return ctx.Err()
		case behavior == behaveCrash && string(j.Payload) == "crash":
			_ = syscall.Kill(pid, syscall.SIGKILL)
			select {} // the signal is on its way
		case behavior == behaveBatch && string(j.Payload) == "permanent":
			return job.Permanent(errors.New("a permanent failure"))
		case behavior == behaveBatch && string(j.Payload) == "transient" && j.Attempt == 1:
			return errors.New("a transient failure")
		}
		if work > 0 {
			t := time.NewTimer(rand.N(work))
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			}
		}
		if behavior == behaveBatch {
			if err := job.SetResult(ctx, j.ID); err != nil {
				return err
			}
		}
		rep.line("done %s %d", j.ID, pid)
		return nil
	})
	if behavior == behaveBatch {
		mux.HandleFunc(getenv(envTopic)+"-callback", func(ctx context.Context, j *job.Job) error {
			c := workflow.CountsOf(j)
			rep.line("callback %s %d %d %d %d", workflow.CallbackOf(j), c.Succeeded, c.Dead, c.Total, pid)
			return nil
		})
	}
	srv, err := server.New(b, mux, &server.Options{
		Concurrency:     num(envConcurrency),
		ShutdownTimeout: dur(envShutdown),
		Retry:           &retry.Policy{Schedule: []time.Duration{10 * time.Millisecond, 10 * time.Millisecond, 10 * time.Millisecond}, RandomizationFactor: retry.NoJitter},
		Logger:          logger,
	})
	if err != nil {
		logger.Error("new server", "error", err)
		return 2
	}
	rep.line("ready %d", pid)
	err = srv.Run(ctx)
	result := "ok"
	if err != nil {
		result = strings.ReplaceAll(err.Error(), "\n", " ")
	}
	rep.line("exit %d %s", pid, result)
	if err != nil {
		logger.Error("run", "error", err)
		return 1
	}
	return 0
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
