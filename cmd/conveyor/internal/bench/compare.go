package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"text/tabwriter"
)

// ReadReport reads a report written by [Report.WriteJSON] (`conveyor bench
// --json`) from the file at path.
func ReadReport(path string) (*Report, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	var r Report
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("bench: %s is not a bench --json report: %w", path, err)
	}
	return &r, nil
}

// metric is one compared quantity of a row: its name in the table, its
// value (nil when the row does not have it) and its format.
type metric struct {
	name   string
	value  func(*Row) *float64
	format func(float64) string
}

// ptr returns a pointer to v.
func ptr(v float64) *float64 { return &v }

// nonzero returns v, or nil when it is zero (a figure the row does not have,
// such as round trips on the memory broker).
func nonzero(v float64) *float64 {
	if v == 0 {
		return nil
	}
	return &v
}

func fixed(prec int) func(float64) string {
	return func(v float64) string { return strconv.FormatFloat(v, 'f', prec, 64) }
}

// comparedMetrics are the quantities WriteComparison shows, in order.
var comparedMetrics = []metric{
	{"jobs/s", func(r *Row) *float64 { return ptr(r.JobsPerSec) }, thousands},
	{"vs floor", func(r *Row) *float64 { return r.RatioToFloor }, func(v float64) string { return fixed(2)(v) + "x" }},
	{"CPU ratio", func(r *Row) *float64 { return r.CPURatioToFloor }, func(v float64) string { return fixed(2)(v) + "x" }},
	{"p50 ms", func(r *Row) *float64 { return r.P50Ms }, fixed(3)},
	{"p90 ms", func(r *Row) *float64 { return r.P90Ms }, fixed(3)},
	{"p99 ms", func(r *Row) *float64 { return r.P99Ms }, fixed(3)},
	{"max ms", func(r *Row) *float64 { return r.MaxMs }, fixed(3)},
	{"CPU µs/job", func(r *Row) *float64 { return nonzero(r.CPUUsPerJob) }, fixed(1)},
	{"Redis µs/job", func(r *Row) *float64 { return nonzero(r.RedisCPUUsPerJob) }, fixed(1)},
	{"RTT/job", func(r *Row) *float64 { return nonzero(r.RoundTripsPerJob) }, fixed(4)},
}

// WriteComparison writes a before/after table of two reports: for each row
// of either (after's order, then the rows only before has) and each quantity
// either has, the old value, the new value and the change in percent of the
// old. A value a report lacks shows as "-", and so does its change.
func WriteComparison(w io.Writer, before, after *Report) error {
	fmt.Fprintf(w, "old: %s\nnew: %s\n\n", describe(before), describe(after))
	names := make([]string, 0, len(after.Scenarios)+len(before.Scenarios))
	seen := make(map[string]bool)
	for _, r := range append(append([]Row(nil), after.Scenarios...), before.Scenarios...) {
		if !seen[r.Name] {
			seen[r.Name] = true
			names = append(names, r.Name)
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tquantity\told\tnew\tchange\t")
	for _, name := range names {
		o, n := before.row(name), after.row(name)
		for _, m := range comparedMetrics {
			var ov, nv *float64
			if o != nil {
				ov = m.value(o)
			}
			if n != nil {
				nv = m.value(n)
			}
			if ov == nil && nv == nil {
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", name, m.name, orDash(ov, m.format), orDash(nv, m.format), change(ov, nv))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, "\nchange: (new - old) / old. jobs/s, vs floor and CPU ratio: higher is better; the others: lower is better.")
	return err
}

// describe says when and how a report was measured, in one line.
func describe(r *Report) string {
	return fmt.Sprintf("%s n=%d runs=%d concurrency=%d payload=%dB rate=%d/s, %s, load average %.1f at start, %.1f at end",
		r.Started.Format("2006-01-02 15:04 UTC"), r.N, r.Runs, r.Concurrency, r.PayloadSize, r.Rate, r.Go, r.LoadAvg[0], r.LoadAvg[1])
}

func orDash(v *float64, format func(float64) string) string {
	if v == nil {
		return "-"
	}
	return format(*v)
}

// change formats (new - old) / old in percent, or "-" when either is
// missing or before is zero.
func change(before, after *float64) string {
	if before == nil || after == nil || *before == 0 {
		return "-"
	}
	return fmt.Sprintf("%+.1f%%", (*after-*before) / *before * 100)
}
