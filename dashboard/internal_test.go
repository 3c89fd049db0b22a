package dashboard

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
)

func TestRates(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tests := []struct {
		name         string
		a, b         sample
		enq, process float64
	}{
		{"idle", sample{at: t0}, sample{at: t0.Add(time.Second)}, 0, 0},
		{"publishes", sample{at: t0, added: 10}, sample{at: t0.Add(2 * time.Second), added: 30}, 10, 0},
		{"reads all settled", sample{at: t0, read: 5}, sample{at: t0.Add(time.Second), read: 9}, 0, 4},
		{"reads still pending", sample{at: t0, read: 5}, sample{at: t0.Add(time.Second), read: 9, pending: 4}, 0, 0},
		{"old pending settled", sample{at: t0, read: 5, pending: 3}, sample{at: t0.Add(time.Second), read: 5}, 0, 3},
		{"stream deleted", sample{at: t0, added: 100, read: 90}, sample{at: t0.Add(time.Second)}, 0, 0},
		{"no time passed", sample{at: t0}, sample{at: t0, added: 5}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enq, proc := rates(tt.a, tt.b)
			if enq != tt.enq || proc != tt.process {
				t.Errorf("rates = %v, %v; want %v, %v", enq, proc, tt.enq, tt.process)
			}
		})
	}
}

// fakeReads returns a read func over topics whose counters grow by step per
// call.
func fakeReads(topics *[]string, step int64) func(context.Context) ([]reading, error) {
	var n int64
	return func(context.Context) ([]reading, error) {
		n++
		var out []reading
		for _, tp := range *topics {
			out = append(out, reading{info: &broker.TopicInfo{Topic: tp}, added: n * step, read: n * step, hasCounters: true})
		}
		return out, nil
	}
}

func TestSampler(t *testing.T) {
	now := time.Unix(1000, 0)
	s := newSampler(Sampling{Interval: time.Second, Samples: 4, Now: func() time.Time { return now }})
	topics := []string{"a", "b"}
	read := fakeReads(&topics, 10)
	ctx := context.Background()

	ov, err := s.sample(ctx, read)
	if err != nil || len(ov.Topics) != 2 || ov.HasRates {
		t.Fatalf("first sample: %+v, %v", ov, err)
	}
	if again, _ := s.sample(ctx, read); again != ov {
		t.Error("a second request within the interval read again")
	}
	for range 6 {
		now = now.Add(time.Second)
		if ov, err = s.sample(ctx, read); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(s.series["a"]); got != 4 {
		t.Errorf("ring holds %d samples, want the 4 configured", got)
	}
	if r := ov.Topics[0]; !r.HasRates || r.EnqueueRate != 10 || r.ProcessRate != 10 || !strings.Contains(string(r.Chart), "<polyline") {
		t.Errorf("topic a: %+v", r.topicStat)
	}
	if st := s.stat("a"); st == nil || st.EnqueueRate != 10 {
		t.Errorf("stat(a) = %+v", st)
	}
	// A topic that disappears loses its samples.
	topics = []string{"a"}
	now = now.Add(time.Second)
	if _, err := s.sample(ctx, read); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.series["b"]; ok || s.stat("b") != nil {
		t.Error("samples of a removed topic are kept")
	}
	// invalidate forces a reading within the interval.
	s.invalidate()
	before := len(s.series["a"])
	if _, err := s.sample(ctx, read); err != nil {
		t.Fatal(err)
	}
	if len(s.series["a"]) == before && before < 4 {
		t.Error("invalidate did not force a reading")
	}
	// A failed reading is returned and keeps nothing.
	s.invalidate()
	boom := errors.New("boom")
	if _, err := s.sample(ctx, func(context.Context) ([]reading, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Errorf("error %v, want boom", err)
	}
}

func TestFormatPayload(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		max       int
		text      string
		json      bool
		truncated int
	}{
		{"json", `{"a":1}`, 100, "{\n  \"a\": 1\n}", true, 0},
		{"text", `hello`, 100, "hello", false, 0},
		{"cut", `abcdefgh`, 3, "abc", false, 5},
		{"cut on a rune boundary", "aé€", 3, "aé", false, 3},
		{"invalid utf-8", "a\xffb", 100, "a\uFFFDb", false, 0},
		{"empty", "", 100, "", false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := formatPayload([]byte(tt.in), tt.max)
			if p.Text != tt.text || p.JSON != tt.json || p.Truncated != tt.truncated || p.Size != len(tt.in) {
				t.Errorf("formatPayload(%q, %d) = %+v", tt.in, tt.max, p)
			}
		})
	}
}

func TestCSRF(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	c := newCSRF(func() time.Time { return now })
	tok := c.token()
	tests := []struct {
		name  string
		tok   string
		after time.Duration
		want  bool
	}{
		{"fresh", tok, 0, true},
		{"an hour old", tok, time.Hour, true},
		{"expired", tok, csrfLifetime + time.Second, false},
		{"from the future", tok, -2 * time.Minute, false},
		{"empty", "", 0, false},
		{"no signature", strings.Split(tok, ".")[0], 0, false},
		{"other time, same signature", "1800000001." + strings.Split(tok, ".")[1], 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			saved := now
			now = now.Add(tt.after)
			defer func() { now = saved }()
			if got := c.valid(tt.tok); got != tt.want {
				t.Errorf("valid(%q) = %v, want %v", tt.tok, got, tt.want)
			}
		})
	}
}

func TestFlashMessage(t *testing.T) {
	tests := []struct{ q, want string }{
		{"done=replayed&n=3", "Replayed 3 dead letters to the stream."},
		{"done=replayed&n=1", "Replayed 1 dead letter to the stream."},
		{"done=purged&n=2", "Purged 2 dead letters."},
		{"done=deleted&n=1", "Deleted the delayed job."},
		{"done=<script>&n=1", ""},
		{"done=replayed&n=x", ""},
		{"", ""},
	}
	for _, tt := range tests {
		q, _ := url.ParseQuery(tt.q)
		if got := flashMessage(q); got != tt.want {
			t.Errorf("flashMessage(%q) = %q, want %q", tt.q, got, tt.want)
		}
	}
}
