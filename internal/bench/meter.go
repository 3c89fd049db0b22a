package bench

import (
	"bytes"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"time"
)

// meter measures one timed phase: wall time, heap allocations and the
// process's peak resident set size.
type meter struct {
	start   time.Time
	mallocs uint64
	hwm     bool // the kernel's peak RSS (VmHWM) was reset and can be read

	stop chan struct{}
	done chan struct{}
	mu   sync.Mutex
	peak int64 // sampled peak VmRSS, bytes
}

// measurement is what a meter measured.
type measurement struct {
	elapsed time.Duration
	mallocs uint64
	rss     int64 // peak resident set size during the phase, bytes
}

// startMeter settles the heap (so that RSS left over from the untimed set-up
// is returned to the OS), resets the kernel's peak-RSS counter and starts
// the clock.
func startMeter() *meter {
	runtime.GC()
	debug.FreeOSMemory()
	m := &meter{stop: make(chan struct{}), done: make(chan struct{})}
	// Writing 5 to clear_refs resets VmHWM to the current RSS (Linux 4.0+).
	m.hwm = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
	m.peak = rssBytes("VmRSS:")
	if m.hwm {
		close(m.done)
	} else {
		go m.sample()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m.mallocs = ms.Mallocs
	m.start = time.Now()
	return m
}

// sample polls VmRSS as a fallback for kernels where VmHWM cannot be reset.
func (m *meter) sample() {
	defer close(m.done)
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			if v := rssBytes("VmRSS:"); v > 0 {
				m.mu.Lock()
				m.peak = max(m.peak, v)
				m.mu.Unlock()
			}
		}
	}
}

// end stops the clock now; see endAt.
func (m *meter) end() measurement { return m.endAt(time.Now()) }

// endAt ends the phase, which completed at t (the moment the last job was
// done, which may be a little before the phase's goroutines have stopped).
// Call end or endAt exactly once.
func (m *meter) endAt(t time.Time) measurement {
	elapsed := t.Sub(m.start)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	close(m.stop)
	<-m.done
	out := measurement{elapsed: elapsed, mallocs: ms.Mallocs - m.mallocs}
	m.mu.Lock()
	out.rss = m.peak
	m.mu.Unlock()
	if m.hwm {
		if v := rssBytes("VmHWM:"); v > 0 {
			out.rss = v
		}
	}
	return out
}

// rssBytes reads a "Vm…:  123 kB" line of /proc/self/status, in bytes, or
// returns 0 when it cannot (not Linux).
func rssBytes(field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	i := bytes.Index(b, []byte(field))
	if i < 0 {
		return 0
	}
	line := b[i+len(field):]
	if j := bytes.IndexByte(line, '\n'); j >= 0 {
		line = line[:j]
	}
	line = bytes.TrimSpace(bytes.TrimSuffix(bytes.TrimSpace(line), []byte("kB")))
	kb, err := strconv.ParseInt(string(line), 10, 64)
	if err != nil {
		return 0
	}
	return kb << 10
}
