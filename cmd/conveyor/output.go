package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// writeJSON writes v as indented JSON and a newline.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// newTable returns a tabwriter for aligned columns; Flush it.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}

// plural returns n followed by one when n is 1 and by many otherwise:
// plural(1, "job", "jobs") is "1 job".
func plural[N ~int | ~int64](n N, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}

// truncate shortens s to n runes, marking the cut with "…", and keeps it on
// one line.
func truncate(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// progress draws a progress bar on a terminal; on anything else it draws
// nothing. It redraws at most every 100ms.
type progress struct {
	w     io.Writer
	label string
	total int
	done  int
	last  time.Time
	on    bool
}

// newProgress returns a bar for total steps, shown only when on.
func newProgress(w io.Writer, label string, total int, on bool) *progress {
	return &progress{w: w, label: label, total: total, on: on}
}

// add advances the bar by n.
func (p *progress) add(n int) {
	p.done += n
	if !p.on || (time.Since(p.last) < 100*time.Millisecond && p.done < p.total) {
		return
	}
	p.last = time.Now()
	const width = 30
	filled := width
	if p.total > 0 {
		filled = min(width, p.done*width/p.total)
	}
	fmt.Fprintf(p.w, "\r%s [%s%s] %d/%d", p.label, strings.Repeat("=", filled), strings.Repeat(" ", width-filled), p.done, p.total)
}

// finish ends the bar's line.
func (p *progress) finish() {
	if p.on && !p.last.IsZero() {
		fmt.Fprintln(p.w)
	}
}
