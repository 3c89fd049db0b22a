package dashboard

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// payload is a job payload prepared for display.
type payload struct {
	Text      string
	JSON      bool
	Size      int // bytes of the whole payload
	Truncated int // bytes not shown
}

// formatPayload pretty-prints a JSON payload and cuts what it shows at max
// bytes (on a rune boundary).
func formatPayload(p []byte, max int) payload {
	out := payload{Size: len(p)}
	text := p
	if json.Valid(p) {
		var buf bytes.Buffer
		if err := json.Indent(&buf, p, "", "  "); err == nil {
			text, out.JSON = buf.Bytes(), true
		}
	}
	if len(text) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(text[cut]) {
			cut--
		}
		out.Truncated = len(text) - cut
		text = text[:cut]
	}
	out.Text = strings.ToValidUTF8(string(text), "\uFFFD")
	return out
}

// Summary is the payload's first line, for a table cell.
func (p payload) Summary() string {
	s := strings.Join(strings.Fields(p.Text), " ")
	if len(s) > 80 {
		i := 80
		for i > 0 && !utf8.RuneStart(s[i]) {
			i--
		}
		s = s[:i] + "…"
	}
	return s
}

func (d *Dashboard) funcs() template.FuncMap {
	return template.FuncMap{
		"pathEscape":  url.PathEscape,
		"queryEscape": url.QueryEscape,
		"num":         num,
		"rate":        rate,
		"dur":         dur,
		"since":       func(t, now time.Time) string { return ago(now.Sub(t)) },
		"until":       until,
		"stamp":       stamp,
		"bytes":       byteSize,
		"percent":     percent,
	}
}

// num formats n with thin thousands separators.
func num(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteRune('\u202f')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// rate formats a per-second rate.
func rate(r float64) string {
	switch {
	case r == 0:
		return "0/s"
	case r < 10:
		return strconv.FormatFloat(r, 'f', 1, 64) + "/s"
	default:
		return num(int64(r+0.5)) + "/s"
	}
}

// dur formats a duration to two units at most: "850ms", "4.2s", "3m12s",
// "2h05m", "3d4h".
func dur(d time.Duration) string {
	switch {
	case d < 0:
		return "-" + dur(-d)
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	case d < time.Minute:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	default:
		return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
	}
}

func ago(d time.Duration) string {
	if d < time.Second {
		return "just now"
	}
	return dur(d.Truncate(time.Second)) + " ago"
}

func until(t, now time.Time) string {
	d := t.Sub(now)
	if d <= 0 {
		return "due now"
	}
	return "in " + dur(d.Round(time.Second))
}

// stamp formats t in UTC, "" for the zero time.
func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

func byteSize(n int) string {
	switch {
	case n < 1024:
		return strconv.Itoa(n) + " B"
	case n < 1<<20:
		return strconv.FormatFloat(float64(n)/1024, 'f', 1, 64) + " KiB"
	default:
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB"
	}
}
