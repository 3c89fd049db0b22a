package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"
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

// printable returns s, a string that came from a producer or from Redis (a
// topic, job ID, header, error text, consumer name…), safe to print on a
// terminal on one line: every control character (tab and newline
// included), every Unicode bidirectional control and every byte that is not
// UTF-8 is replaced by its Go escape (\x1b, \n, \u202e, \xff), so that no
// data can move the cursor, clear the screen, set the window title or
// reorder what the operator reads. A backslash is kept as it is. Human
// output passes producer data through printable; --json output does not
// need to (JSON escapes control characters itself).
func printable(s string) string { return escapeControls(s, false) }

// printableText is [printable] for multi-line text (payloads): newlines and
// tabs are kept, every other control character is escaped.
func printableText(s string) string { return escapeControls(s, true) }

func escapeControls(s string, keepLines bool) string {
	if !needsEscape(s, keepLines) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case keepLines && (r == '\n' || r == '\t'):
			b.WriteRune(r)
		case unsafeRune(r):
			q := strconv.QuoteRune(r) // '\x1b', '\n', '\u202e'
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func needsEscape(s string, keepLines bool) bool {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || (unsafeRune(r) && !(keepLines && (r == '\n' || r == '\t'))) {
			return true
		}
		i += size
	}
	return false
}

// unsafeRune reports whether r is a control character (C0, DEL, C1) or a
// bidirectional formatting character.
func unsafeRune(r rune) bool {
	switch {
	case unicode.IsControl(r):
		return true
	case r == '\u200e' || r == '\u200f', r >= '\u202a' && r <= '\u202e', r >= '\u2066' && r <= '\u2069':
		return true
	}
	return false
}
