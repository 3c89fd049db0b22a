package bench

import (
	"bytes"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// meter measures one timed phase: wall time, heap allocations and the
// process's peak resident set size.
type meter struct {
	start   time.Time
	mallocs uint64
	rt      *roundTrips // nil when the phase talks to no Redis
	trips   int64
	cmds    int64
	hwm     bool                 // the kernel's peak RSS (VmHWM) was reset and can be read
	cpu     time.Duration        // this process's CPU time (user + system)
	redis   func() time.Duration // Redis server CPU time; nil when unknown
	rcpu    time.Duration

	stop chan struct{}
	done chan struct{}
	mu   sync.Mutex
	peak int64 // sampled peak VmRSS, bytes
}

// measurement is what a meter measured.
type measurement struct {
	elapsed time.Duration
	mallocs uint64
	rss     int64         // peak resident set size during the phase, bytes
	trips   int64         // Redis round trips
	cmds    int64         // Redis commands
	cpu     time.Duration // CPU time of this process
	rcpu    time.Duration // CPU time of the Redis server (0 when unknown)
}

// startMeter settles the heap (so that RSS left over from the untimed set-up
// is returned to the OS), resets the kernel's peak-RSS counter and starts
// the clock. rt, when not nil, counts the phase's Redis round trips; e's
// admin client, when set, reads the Redis server's CPU time.
func startMeter(e *env, rt *roundTrips) *meter {
	runtime.GC()
	debug.FreeOSMemory()
	m := &meter{rt: rt, stop: make(chan struct{}), done: make(chan struct{})}
	if e != nil && e.rdb != nil {
		m.redis = e.redisCPU
		m.rcpu = m.redis()
	}
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
	m.trips, m.cmds = rt.snapshot()
	m.cpu = processCPU()
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
	cpu := processCPU()
	trips, cmds := m.rt.snapshot()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	close(m.stop)
	<-m.done
	out := measurement{elapsed: elapsed, mallocs: ms.Mallocs - m.mallocs, trips: trips - m.trips, cmds: cmds - m.cmds, cpu: cpu - m.cpu}
	if m.redis != nil {
		if r := m.redis(); r > 0 && m.rcpu > 0 {
			out.rcpu = r - m.rcpu
		}
	}
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

// loadAvg returns the 1-minute load average, or 0 when unknown.
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f, _, _ := strings.Cut(string(b), " ")
	v, _ := strconv.ParseFloat(f, 64)
	return v
}

// processCPU returns the user + system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
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
