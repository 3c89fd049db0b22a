package job

import (
	"fmt"
	"path"
	"runtime/debug"
	"strings"
)

// PanicError is the error a handler's panic becomes, whoever recovers it (the
// recover middleware, or the server around every handler). To the outcome
// model it is a plain failure: the retry policy retries it, and the last
// attempt's failure is dead-lettered with reason [ReasonPanic].
//
// Its error text holds the panic value only: the stack would flood logs and
// dead letters. [FailureOf] adds the topmost frames of the panic site to the
// recorded error text and keeps the stack in [Failure.Stack].
type PanicError struct {
	// Value is the value passed to panic.
	Value any
	// Stack is the panicking goroutine's stack, as [debug.Stack] formats it.
	Stack []byte
}

// NewPanicError returns the PanicError of a recovered value v, with the
// current goroutine's stack. Call it in the deferred function that
// recovered v, so that the stack shows the panic site.
func NewPanicError(v any) *PanicError {
	return &PanicError{Value: v, Stack: debug.Stack()}
}

// Error returns "conveyor: handler panicked: <value>".
func (e *PanicError) Error() string {
	return fmt.Sprintf("conveyor: handler panicked: %v", e.Value)
}

// panicFrames is how many frames of the panic site a failure's error text
// names.
const panicFrames = 3

// where returns " [at pkg.F (file.go:12) < pkg.G (file.go:30) < …]", the
// topmost frames of the panic site, or "" when the stack shows none.
func (e *PanicError) where() string {
	fs := e.Frames(panicFrames)
	if len(fs) == 0 {
		return ""
	}
	return " [at " + strings.Join(fs, " < ") + "]"
}

// Unwrap returns Value when it is an error, so that errors.Is and errors.As
// see through a panic(err).
func (e *PanicError) Unwrap() error {
	if err, ok := e.Value.(error); ok {
		return err
	}
	return nil
}

// Frames returns up to n frames of the panic site, innermost first, each as
// "function (file.go:line)": the frames of Stack below the call to panic,
// skipping those of the runtime and ending where conveyor's own code (the
// job, middleware and server packages, which call the handler) begins. It
// returns nil when Stack holds no such frame.
func (e *PanicError) Frames(n int) []string {
	lines := strings.Split(string(e.Stack), "\n")
	// Frames are pairs of lines: "pkg.F(args)" and "\tfile.go:12 +0x1f".
	start := 0
	for i, l := range lines {
		if strings.HasPrefix(l, "panic(") {
			start = i + 2
			break
		}
	}
	if start == 0 {
		return nil
	}
	var out []string
	for i := start; i+1 < len(lines) && len(out) < n; i += 2 {
		fn, loc := lines[i], strings.TrimSpace(lines[i+1])
		if fn == "" || strings.HasPrefix(fn, "created by ") || !strings.HasPrefix(lines[i+1], "\t") {
			break
		}
		if p := strings.LastIndexByte(fn, '('); p > 0 {
			fn = fn[:p]
		}
		if strings.HasPrefix(fn, "runtime.") {
			continue
		}
		if isCaller(fn) {
			break
		}
		loc, _, _ = strings.Cut(loc, " ")
		out = append(out, fmt.Sprintf("%s (%s)", fn, path.Base(loc)))
	}
	return out
}

// callers are the packages that call handlers: a stack's frames from there
// on are conveyor's, not the handler's.
var callers = []string{
	"github.com/conveyor-jobs/conveyor/job.",
	"github.com/conveyor-jobs/conveyor/middleware.",
	"github.com/conveyor-jobs/conveyor/server.",
}

func isCaller(fn string) bool {
	for _, p := range callers {
		if strings.HasPrefix(fn, p) {
			return true
		}
	}
	return false
}
