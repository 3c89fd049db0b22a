package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/conveyor-jobs/conveyor/job"
)

// Exit statuses with a meaning of their own for an exec handler (sysexits.h).
const (
	// exitDataErr (EX_DATAERR) dead-letters the job at once.
	exitDataErr = 65
	// exitTempFail (EX_TEMPFAIL) is a temporary failure: retried per policy.
	exitTempFail = 75
)

// execShell runs an exec handler's command line.
const execShell = "/bin/sh"

// execPrelude precedes the command line. A shell that runs a command as a
// child of its own (dash does, for every command) would die of the SIGTERM
// sent to the group, before the command has had its say. Caught, the
// signal waits for the command to end, and the shell exits with the
// command's status; the command itself gets SIGTERM with the default
// disposition (traps are not inherited), free to handle it.
const execPrelude = "trap : TERM\n"

// stderrTail is how much of a handler's stderr, from its end, becomes the
// error of a failed job.
const stderrTail = 4 << 10

// maxOutputLine bounds one logged line of handler output; longer lines are
// logged in pieces of this size.
const maxOutputLine = 4 << 10

// Environment variables an exec handler receives.
const (
	envJobID      = "CONVEYOR_JOB_ID"
	envTopic      = "CONVEYOR_TOPIC"
	envAttempt    = "CONVEYOR_ATTEMPT"
	envEnqueuedAt = "CONVEYOR_ENQUEUED_AT"
	envEnqueuedMs = "CONVEYOR_ENQUEUED_AT_MS"
	envDeadline   = "CONVEYOR_DEADLINE"
	envHeaders    = "CONVEYOR_HEADERS"
	envHeaderPref = "CONVEYOR_HEADER_"
)

// envTimeLayout formats the times in the environment: RFC 3339 in UTC with
// milliseconds.
const envTimeLayout = "2006-01-02T15:04:05.000Z07:00"

// errStopping snoozes a job that reaches an exec handler after the worker
// began to stop: it is put back without spending an attempt.
var errStopping = errors.New("the worker is stopping")

// execOptions configures [newExecHandler].
type execOptions struct {
	// Command is the command line, run by /bin/sh -c once per job.
	Command string
	// KillGrace is how long a process group has between SIGTERM and
	// SIGKILL when its job's deadline passes; zero kills at once.
	KillGrace time.Duration
	// Logger receives the handler's output, one record per line; nil
	// discards it.
	Logger *slog.Logger
}

// execHandler is a [job.Handler] that runs a command once per job: the
// payload on stdin, the job's fields in CONVEYOR_* environment variables,
// the outcome from the exit status (see execOutcome).
//
// Each process runs in a process group of its own. When the job's context
// ends (its deadline passed, or the server gave up on it at shutdown), the
// group gets SIGTERM and, KillGrace later, SIGKILL. When the process exits,
// whatever is left of its group is killed, so nothing a job started outlives
// it (short of a process that leaves the group, with setsid). On Linux the
// process also gets SIGKILL if the worker dies.
//
// ProcessJob is safe for concurrent use; [execHandler.Terminate] may be called
// at any time.
type execHandler struct {
	opts execOptions
	log  *slog.Logger

	mu       sync.Mutex
	stopping bool
	running  map[*execChild]struct{}
}

// execChild is a running handler process.
type execChild struct {
	pid int
	// termed is set, under execHandler.mu, once the group got SIGTERM.
	termed bool
}

// newExecHandler returns a handler that runs o.Command for every job.
func newExecHandler(o execOptions) *execHandler {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &execHandler{opts: o, log: log, running: map[*execChild]struct{}{}}
}

// Terminate sends SIGTERM to the process group of every running job and
// makes jobs that arrive later snooze (put back without spending an
// attempt) instead of starting. A job whose process group got SIGTERM here
// gets SIGKILL as soon as its context ends.
func (h *execHandler) Terminate() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stopping = true
	for c := range h.running {
		h.term(c)
	}
}

// term sends SIGTERM to c's group once; h.mu is held.
func (h *execHandler) term(c *execChild) {
	if !c.termed {
		c.termed = true
		_ = signalGroup(c.pid, syscall.SIGTERM)
	}
}

// ProcessJob runs the command for j and waits for it.
func (h *execHandler) ProcessJob(ctx context.Context, j *job.Job) error {
	h.mu.Lock()
	stopping := h.stopping
	h.mu.Unlock()
	if stopping {
		return job.SnoozeBecause(0, errStopping)
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("exec handler: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		closeAll(stdinR, stdinW)
		return fmt.Errorf("exec handler: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		closeAll(stdinR, stdinW, outR, outW)
		return fmt.Errorf("exec handler: %w", err)
	}
	cmd := exec.Command(execShell, "-c", execPrelude+h.opts.Command)
	cmd.Env = jobEnv(os.Environ(), ctx, j)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdinR, outW, errW
	cmd.SysProcAttr = groupAttr()
	err = cmd.Start()
	closeAll(stdinR, outW, errW) // the child holds them now
	if err != nil {
		closeAll(stdinW, outR, errR)
		return fmt.Errorf("exec handler: start %s: %w", execShell, err)
	}

	c := &execChild{pid: cmd.Process.Pid}
	h.mu.Lock()
	h.running[c] = struct{}{}
	if h.stopping {
		h.term(c)
	}
	h.mu.Unlock()

	// The payload is written, and the output read, by goroutines of their
	// own: a child that neither reads nor exits must not block them forever,
	// and a Wait that returns as soon as the child exits must not wait for
	// them (they end when the group is gone, or are cut off below).
	var tail tailBuffer
	var pipes sync.WaitGroup
	pipes.Go(func() {
		_, _ = stdinW.Write(j.Payload)
		_ = stdinW.Close()
	})
	log := h.log.With("job_id", j.ID, "topic", j.Topic, "attempt", j.Attempt)
	pipes.Go(func() { logLines(outR, log.With("stream", "stdout")) })
	pipes.Go(func() { logLines(io.TeeReader(errR, &tail), log.With("stream", "stderr")) })

	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	var waitErr error
	var graceC <-chan time.Time
	done := ctx.Done()
wait:
	for {
		select {
		case waitErr = <-waited:
			break wait
		case <-done:
			done = nil
			h.mu.Lock()
			already := c.termed
			h.term(c)
			h.mu.Unlock()
			if already || h.opts.KillGrace <= 0 {
				_ = signalGroup(c.pid, syscall.SIGKILL)
				continue
			}
			t := time.NewTimer(h.opts.KillGrace)
			defer t.Stop()
			graceC = t.C
		case <-graceC:
			graceC = nil
			_ = signalGroup(c.pid, syscall.SIGKILL)
		}
	}
	// Kill what the job left behind in its group. The group's ID cannot
	// have been reused while any of its members lives.
	_ = signalGroup(c.pid, syscall.SIGKILL)
	h.mu.Lock()
	delete(h.running, c)
	h.mu.Unlock()

	ioDone := make(chan struct{})
	go func() { pipes.Wait(); close(ioDone) }()
	select {
	case <-ioDone:
	case <-time.After(max(h.opts.KillGrace, time.Second)):
		// A process that left the group still holds the pipes.
		closeAll(stdinW, outR, errR)
		<-ioDone
	}
	closeAll(outR, errR)
	return execOutcome(cmd.ProcessState, waitErr, tail.String())
}

// logLines logs r line by line, each line at most maxOutputLine bytes.
func logLines(r io.Reader, log *slog.Logger) {
	br := bufio.NewReaderSize(r, maxOutputLine)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			line = bytes.TrimRight(line, "\r\n")
			log.Info("handler output", "line", string(line))
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return // end of output, or cut off
		}
	}
}

// execOutcome turns how a handler process ended into the job's outcome:
// nil (ack) for status 0, a permanent failure for 65 and a plain failure,
// retried per policy, for anything else.
func execOutcome(ps *os.ProcessState, waitErr error, stderr string) error {
	if ps == nil {
		return fmt.Errorf("exec handler: %w", waitErr)
	}
	if ps.Success() {
		return nil
	}
	e := &execError{Status: ps.ExitCode(), Stderr: stderr}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		e.Signal = ws.Signal()
	}
	if e.Status == exitDataErr {
		return job.Permanent(e)
	}
	return e
}

// execError is the failure of a handler process.
type execError struct {
	// Status is the exit status, -1 when a signal ended the process.
	Status int
	// Signal is the signal that ended the process, if one did.
	Signal syscall.Signal
	// Stderr is the end of what the process wrote to stderr.
	Stderr string
}

func (e *execError) Error() string {
	var s string
	switch {
	case e.Status < 0:
		s = "handler killed by signal " + e.Signal.String()
	case e.Status == exitTempFail:
		s = "handler exited with status 75 (temporary failure)"
	case e.Status == exitDataErr:
		s = "handler exited with status 65 (data error)"
	case e.Status > 128 && e.Status <= 128+64:
		// How a shell reports a command that a signal ended.
		n := syscall.Signal(e.Status - 128)
		s = fmt.Sprintf("handler exited with status %d (128 + signal %d: %v)", e.Status, int(n), n)
	default:
		s = "handler exited with status " + strconv.Itoa(e.Status)
	}
	if e.Stderr != "" {
		s += ": " + e.Stderr
	}
	return s
}

// jobEnv returns base, without variables that belong to a job, plus j's.
func jobEnv(base []string, ctx context.Context, j *job.Job) []string {
	env := make([]string, 0, len(base)+8+len(j.Headers))
	for _, kv := range base {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(name, envHeaderPref),
			name == envJobID, name == envTopic, name == envAttempt, name == envEnqueuedAt,
			name == envEnqueuedMs, name == envDeadline, name == envHeaders:
			continue
		}
		env = append(env, kv)
	}
	env = append(env, envJobID+"="+j.ID, envTopic+"="+j.Topic, envAttempt+"="+strconv.Itoa(j.Attempt))
	if !j.EnqueuedAt.IsZero() {
		env = append(env, envEnqueuedAt+"="+j.EnqueuedAt.UTC().Format(envTimeLayout),
			envEnqueuedMs+"="+strconv.FormatInt(j.EnqueuedAt.UnixMilli(), 10))
	}
	if d, ok := ctx.Deadline(); ok {
		env = append(env, envDeadline+"="+d.UTC().Format(envTimeLayout))
	}
	if len(j.Headers) == 0 {
		return env
	}
	all, _ := json.Marshal(j.Headers) // a map of strings always encodes
	env = append(env, envHeaders+"="+string(all))
	names := make([]string, 0, len(j.Headers))
	for n := range j.Headers {
		names = append(names, n)
	}
	slices.Sort(names)
	seen := map[string]bool{}
	for _, n := range names {
		v := headerEnvName(n)
		if v == "" || seen[v] || strings.IndexByte(j.Headers[n], 0) >= 0 {
			continue // first name in byte order wins; NUL cannot be in the environment
		}
		seen[v] = true
		env = append(env, v+"="+j.Headers[n])
	}
	return env
}

// headerEnvName returns the environment variable of header name:
// CONVEYOR_HEADER_ and the name in upper case with every character other
// than an ASCII letter or digit replaced by "_"; "" for an empty name.
func headerEnvName(name string) string {
	if name == "" {
		return ""
	}
	var b strings.Builder
	b.WriteString(envHeaderPref)
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z':
			b.WriteRune(r - 'a' + 'A')
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// tailBuffer keeps the last stderrTail bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	cut bool
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(p)
	if len(p) >= stderrTail {
		t.buf = append(t.buf[:0], p[len(p)-stderrTail:]...)
		t.cut = true
		return n, nil
	}
	if over := len(t.buf) + len(p) - stderrTail; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
		t.cut = true
	}
	t.buf = append(t.buf, p...)
	return n, nil
}

// String returns the kept bytes, trimmed of surrounding white space,
// starting at a whole character and prefixed with "…" when earlier bytes
// were dropped.
func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.buf
	if t.cut {
		for len(b) > 0 && !utf8.RuneStart(b[0]) {
			b = b[1:]
		}
	}
	s := strings.TrimSpace(strings.ToValidUTF8(string(b), "\uFFFD"))
	if t.cut && s != "" {
		s = "…" + s
	}
	return s
}

func closeAll(fs ...*os.File) {
	for _, f := range fs {
		_ = f.Close()
	}
}

// groupAttr starts a handler process as the leader of a process group of its
// own, so that signals reach everything it starts.
func groupAttr() *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true}
	setDeathSignal(a)
	return a
}

// signalGroup sends sig to the process group led by pid.
func signalGroup(pid int, sig syscall.Signal) error {
	return syscall.Kill(-pid, sig)
}
