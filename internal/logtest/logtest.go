// Package logtest keeps what a logger (or a command's output) writes, for tests that
// read it back while the writer may still be running.
package logtest

import (
	"bytes"
	"log/slog"
	"sync"
)

// Buffer is an io.Writer that keeps everything written to it. It is safe for
// concurrent use; the zero Buffer is empty and ready.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p to b. It never fails.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TextLogger returns a logger that writes text records to b; nil opts means
// the slog defaults.
func (b *Buffer) TextLogger(opts *slog.HandlerOptions) *slog.Logger {
	return slog.New(slog.NewTextHandler(b, opts))
}

// JSONLogger returns a logger that writes JSON records, one a line, to b;
// nil opts means the slog defaults.
func (b *Buffer) JSONLogger(opts *slog.HandlerOptions) *slog.Logger {
	return slog.New(slog.NewJSONHandler(b, opts))
}
