package bench

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestRSSSamplerReadsEachPointOnce(t *testing.T) {
	s := newRSSSampler(1000, []int{10, 50, 100})
	for range 6 {
		s.acknowledged(64) // 384: past 10 % only
	}
	if got := s.result(); len(got) != 1 || got[0].Percent != 10 || got[0].Jobs != 128 {
		t.Fatalf("after 384 jobs: %+v, want one sample at 10%% (128 jobs)", got)
	}
	s.acknowledged(656) // 1040: past 50 % and 100 % at once
	got := s.result()
	if len(got) != 3 || got[1].Percent != 50 || got[2].Percent != 100 || got[2].Jobs != 1040 {
		t.Fatalf("samples %+v", got)
	}
	if got[0].HeapMB <= 0 || rssBytes("VmRSS:") > 0 && got[0].MB <= 0 {
		t.Errorf("no RSS read: %+v", got)
	}
	if newRSSSampler(1000, nil) != nil || (*rssSampler)(nil).result() != nil {
		t.Error("a sampler of no points should be nil and report nothing")
	}
	r := &Report{}
	r.add(ScenarioProcess, RowProcess, "p", RunResult{RSSSamples: got})
	var b bytes.Buffer
	writeRSSSamples(&b, r)
	if !strings.HasPrefix(b.String(), "RSS MB (Go heap MB) of process run 1 at jobs acknowledged: 10% ") {
		t.Errorf("table line %q", b.String())
	}
}

func TestLatencyRows(t *testing.T) {
	for name, want := range map[string]int{"latency-20000": 20000, "latency-ack-500": 500, "floor-latency-20000": 20000} {
		if got, ok := latencyRate(name); !ok || got != want {
			t.Errorf("latencyRate(%q) = %d, %v", name, got, ok)
		}
		if baselineOf(name) != "" {
			t.Errorf("%s has a baseline", name)
		}
	}
	for _, name := range []string{RowLatency, RowLatencyAck, RowFloorLatency, "latency-x", RowProcess} {
		if _, ok := latencyRate(name); ok {
			t.Errorf("latencyRate(%q) found a rate", name)
		}
	}
	if latencyRow(RowLatencyAck, 20000) != "latency-ack-20000" {
		t.Error(latencyRow(RowLatencyAck, 20000))
	}
	if pacedPublishers(2000) != 1 || pacedPublishers(20000) != 8 {
		t.Error("publishers per rate")
	}
}

func TestConfigRatesAndSamples(t *testing.T) {
	c, err := Config{LatencyRates: []int{20000}, RSSSamples: []int{100, 10, 50, 10}}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if len(c.RSSSamples) != 3 || c.RSSSamples[0] != 10 || c.RSSSamples[2] != 100 {
		t.Errorf("samples %v, want sorted without duplicates", c.RSSSamples)
	}
	for _, bad := range []Config{{LatencyRates: []int{0}}, {RSSSamples: []int{0}}, {RSSSamples: []int{101}}} {
		if _, err := bad.withDefaults(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%+v: %v", bad, err)
		}
	}
}
