package bench

import (
	"fmt"
	"io"
	"runtime/metrics"
	"strings"
	"sync"
)

// RSSSample is the process's resident set size when a share of a
// processing run's jobs had been acknowledged.
type RSSSample struct {
	// Percent of the run's jobs acknowledged (Config.RSSSamples).
	Percent int `json:"percent"`
	// Jobs acknowledged when the sample was read.
	Jobs int64 `json:"jobs"`
	// MB is VmRSS in MiB.
	MB float64 `json:"mb"`
	// HeapMB is the Go heap's live and not yet swept objects, in MiB
	// (runtime/metrics /memory/classes/heap/objects:bytes).
	HeapMB float64 `json:"heap_mb"`
}

// rssSampler reads VmRSS as acknowledgements pass the points of
// Config.RSSSamples. It is fed by an ackWatch's onAck.
type rssSampler struct {
	mu      sync.Mutex
	at      []int64 // job counts to sample at, ascending
	percent []int
	acked   int64
	samples []RSSSample
}

// newRSSSampler returns a sampler of n jobs at percent points, or nil for
// none.
func newRSSSampler(n int, percent []int) *rssSampler {
	if len(percent) == 0 {
		return nil
	}
	s := &rssSampler{percent: percent}
	for _, p := range percent {
		s.at = append(s.at, max(1, int64(n)*int64(p)/100))
	}
	return s
}

// acknowledged counts k more acknowledged jobs and reads VmRSS at each
// point passed.
func (s *rssSampler) acknowledged(k int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.acked += int64(k)
	for len(s.samples) < len(s.at) && s.acked >= s.at[len(s.samples)] {
		s.samples = append(s.samples, RSSSample{
			Percent: s.percent[len(s.samples)],
			Jobs:    s.acked,
			MB:      float64(rssBytes("VmRSS:")) / (1 << 20),
			HeapMB:  float64(heapObjects()) / (1 << 20),
		})
	}
}

// result returns the samples read.
func (s *rssSampler) result() []RSSSample {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]RSSSample(nil), s.samples...)
}

// heapObjects returns the bytes of the Go heap's objects, without stopping
// the world.
func heapObjects() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// writeRSSSamples writes, for every row with RSS samples, one line per run.
func writeRSSSamples(w io.Writer, r *Report) {
	for _, row := range r.Scenarios {
		for i, run := range row.Runs {
			if len(run.RSSSamples) == 0 {
				continue
			}
			parts := make([]string, len(run.RSSSamples))
			for j, s := range run.RSSSamples {
				parts[j] = fmt.Sprintf("%d%% %.1f (heap %.1f)", s.Percent, s.MB, s.HeapMB)
			}
			fmt.Fprintf(w, "RSS MB (Go heap MB) of %s run %d at jobs acknowledged: %s\n", row.Name, i+1, strings.Join(parts, ", "))
		}
	}
}
