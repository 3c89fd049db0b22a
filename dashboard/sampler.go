package dashboard

import (
	"context"
	"fmt"
	"html/template"
	"strings"
	"sync"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
)

// rateWindow is how many sample intervals the displayed rates average over.
const rateWindow = 5

// reading is one topic's state read from the broker.
type reading struct {
	info        *broker.TopicInfo
	added, read int64
	hasCounters bool
}

// sample is one reading of a topic's counters.
type sample struct {
	at                   time.Time
	added, read, pending int64
}

// overview is the latest sample of every topic.
type overview struct {
	SampledAt time.Time   `json:"sampled_at"`
	HasRates  bool        `json:"has_rates"`
	Topics    []*topicRow `json:"topics"`
	Totals    totals      `json:"totals"`
}

// totals sums the overview's columns.
type totals struct {
	Length      int64   `json:"length"`
	Pending     int64   `json:"pending"`
	Lag         int64   `json:"lag"`
	Delayed     int64   `json:"delayed"`
	DeadLetters int64   `json:"dead_letters"`
	Consumers   int     `json:"consumers"`
	EnqueueRate float64 `json:"enqueue_rate"`
	ProcessRate float64 `json:"process_rate"`
}

// topicRow is one topic of the overview.
type topicRow struct {
	*broker.TopicInfo
	Consumers int `json:"consumers"`
	topicStat
}

// topicStat is what the sampler derives for one topic.
type topicStat struct {
	// HasRates is false until two readings with counters exist.
	HasRates bool `json:"has_rates"`
	// EnqueueRate is entries added to the stream per second; ProcessRate
	// is deliveries settled per second; both averaged over the last few
	// samples.
	EnqueueRate float64 `json:"enqueue_rate"`
	ProcessRate float64 `json:"process_rate"`
	// Chart is an inline SVG of both rates over the kept samples.
	Chart template.HTML `json:"-"`
}

// sampler keeps a bounded ring of samples per topic and the latest overview.
// It reads the broker only when the last reading is older than the interval.
type sampler struct {
	o Sampling

	mu     sync.Mutex // held while reading, so concurrent requests share one reading
	last   time.Time
	cached *overview
	series map[string][]sample
	stats  map[string]topicStat
}

func newSampler(o Sampling) *sampler {
	return &sampler{o: o, series: map[string][]sample{}, stats: map[string]topicStat{}}
}

// sample returns the cached overview, or a new one from read when the cache
// is older than the interval.
func (s *sampler) sample(ctx context.Context, read func(context.Context) ([]reading, error)) (*overview, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.o.Now()
	if s.cached != nil && now.Sub(s.last) < s.o.Interval {
		return s.cached, nil
	}
	rs, err := read(ctx)
	if err != nil {
		return nil, err
	}
	now = s.o.Now()
	ov := &overview{SampledAt: now, Topics: make([]*topicRow, 0, len(rs))}
	seen := make(map[string]bool, len(rs))
	for _, r := range rs {
		t := r.info.Topic
		seen[t] = true
		row := &topicRow{TopicInfo: r.info}
		for _, g := range r.info.Groups {
			row.Consumers += len(g.Consumers)
		}
		if r.hasCounters {
			ring := append(s.series[t], sample{at: now, added: r.added, read: r.read, pending: r.info.Pending})
			if len(ring) > s.o.Samples {
				ring = ring[len(ring)-s.o.Samples:]
			}
			s.series[t] = ring
			row.topicStat = statOf(ring)
		}
		s.stats[t] = row.topicStat
		ov.HasRates = ov.HasRates || row.HasRates
		ov.Topics = append(ov.Topics, row)
		tt := &ov.Totals
		tt.Length += r.info.Length
		tt.Pending += r.info.Pending
		tt.Lag += r.info.Lag
		tt.Delayed += r.info.Delayed
		tt.DeadLetters += r.info.DeadLetters
		tt.Consumers += row.Consumers
		tt.EnqueueRate += row.EnqueueRate
		tt.ProcessRate += row.ProcessRate
	}
	for t := range s.series {
		if !seen[t] {
			delete(s.series, t)
			delete(s.stats, t)
		}
	}
	s.cached, s.last = ov, now
	return ov, nil
}

// invalidate makes the next request read the broker again (after an action
// changed the counts).
func (s *sampler) invalidate() {
	s.mu.Lock()
	s.cached = nil
	s.mu.Unlock()
}

// stat returns the latest derived numbers of topic, or nil when it was never
// sampled with counters.
func (s *sampler) stat(topic string) *topicStat {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.stats[topic]
	if !ok || !st.HasRates {
		return nil
	}
	return &st
}

// rates returns the enqueue and processing rates between samples a and b
// (per second, never negative: a counter that went back, as when a stream
// is deleted, counts as no activity).
func rates(a, b sample) (enqueue, process float64) {
	dt := b.at.Sub(a.at).Seconds()
	if dt <= 0 {
		return 0, 0
	}
	added := b.added - a.added
	settled := (b.read - a.read) - (b.pending - a.pending)
	return max(float64(added), 0) / dt, max(float64(settled), 0) / dt
}

// statOf derives rates and the chart from a ring of samples.
func statOf(ring []sample) topicStat {
	if len(ring) < 2 {
		return topicStat{}
	}
	from := ring[max(len(ring)-1-rateWindow, 0)]
	enq, proc := rates(from, ring[len(ring)-1])
	return topicStat{HasRates: true, EnqueueRate: enq, ProcessRate: proc, Chart: chart(ring)}
}

// Chart geometry, in SVG user units.
const (
	chartW = 160
	chartH = 32
)

// chart draws the enqueue (blue) and processing (green) rates of each
// interval of ring as two polylines over time. It writes numbers only, so
// the result is safe HTML.
func chart(ring []sample) template.HTML {
	n := len(ring) - 1
	enq := make([]float64, n)
	proc := make([]float64, n)
	top := 1.0
	for i := range n {
		enq[i], proc[i] = rates(ring[i], ring[i+1])
		top = max(top, enq[i], proc[i])
	}
	t0 := ring[0].at
	span := ring[n].at.Sub(t0).Seconds()
	x := func(i int) float64 {
		if span <= 0 {
			return 0
		}
		return ring[i+1].at.Sub(t0).Seconds() / span * chartW
	}
	y := func(v float64) float64 { return chartH - 1 - v/top*(chartH-2) }
	line := func(vs []float64) string {
		var b strings.Builder
		if n == 1 {
			fmt.Fprintf(&b, "0,%.1f ", y(vs[0]))
		}
		for i, v := range vs {
			fmt.Fprintf(&b, "%.1f,%.1f ", x(i), y(v))
		}
		return strings.TrimSpace(b.String())
	}
	return template.HTML(fmt.Sprintf(
		`<svg class="chart" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="enqueue and processing rate, peak %.1f/s">`+
			`<title>peak %.1f/s</title>`+
			`<polyline class="enq" points="%s"/><polyline class="proc" points="%s"/></svg>`,
		chartW, chartH, chartW, chartH, top, top, line(enq), line(proc)))
}
