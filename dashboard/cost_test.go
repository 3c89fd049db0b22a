package dashboard_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/dashboard"
	"github.com/conveyor-jobs/conveyor/internal/dashboardtest"
	"github.com/conveyor-jobs/conveyor/internal/redistest"
	"github.com/conveyor-jobs/conveyor/job"
)

// monitor records the commands a Redis server runs (MONITOR) until stop.
type monitor struct {
	conn net.Conn
	wg   sync.WaitGroup
	mu   sync.Mutex
	cmds [][]string
}

func startMonitor(t *testing.T, addr string) *monitor {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	m := &monitor{conn: conn}
	if _, err := conn.Write([]byte("MONITOR\r\n")); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "+OK") {
		t.Fatalf("MONITOR: %q %v", line, err)
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			// +1700000000.123456 [0 127.0.0.1:5555] "XRANGE" "key" "-" "+"
			_, rest, ok := strings.Cut(line, "] ")
			if !ok {
				continue
			}
			var args []string
			for _, f := range strings.Fields(strings.TrimSpace(rest)) {
				if s, err := strconv.Unquote(f); err == nil {
					args = append(args, s)
				} else {
					args = append(args, strings.Trim(f, `"`))
				}
			}
			m.mu.Lock()
			m.cmds = append(m.cmds, args)
			m.mu.Unlock()
		}
	}()
	t.Cleanup(m.stop)
	return m
}

func (m *monitor) stop() { _ = m.conn.Close(); m.wg.Wait() }

// until returns the commands seen before one whose arguments include marker.
func (m *monitor) until(t *testing.T, marker string) [][]string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		m.mu.Lock()
		for i, c := range m.cmds {
			if len(c) > 1 && c[len(c)-1] == marker {
				out := m.cmds[:i]
				m.mu.Unlock()
				return out
			}
		}
		m.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("MONITOR never saw %s", marker)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCostIsBounded renders every page over a topic with thousands of jobs
// and checks what Redis ran: no KEYS, at most one bounded SCAN (topic
// discovery), every list read bounded by the page size, and a fixed number of
// commands.
func TestCostIsBounded(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.WithArgs("--databases", "16")) // a server of its own
	b := dashboardtest.OpenBroker(t, srv, "w")
	ctx := context.Background()
	dashboardtest.Publish(t, b, "big", 3000)
	delayed := make([]broker.Message, 300)
	for i := range delayed {
		delayed[i] = broker.Message{Topic: "big", Payload: []byte("{}"), Delay: time.Hour + time.Duration(i)*time.Second}
	}
	if _, err := b.PublishBatch(ctx, delayed); err != nil {
		t.Fatal(err)
	}
	for i, d := range dashboardtest.Fetch(t, b, "big", 200) {
		if i < 120 {
			if err := b.DeadLetter(ctx, d, job.Failure{Error: "boom", Reason: job.ReasonPermanent}); err != nil {
				t.Fatal(err)
			}
		}
	}
	dashboardtest.Publish(t, b, "small", 1)

	h := dashboard.New(b, nil)
	rdb := srv.Client(t)
	m := startMonitor(t, srv.Addr())
	pages := []string{"/", "/fragments/overview", "/api/overview", "/topics/big", "/topics/big/fragments/stats", "/topics/big?after=0-1"}
	for _, p := range pages {
		if res := get(t, h, p); res.StatusCode != 200 {
			t.Fatalf("GET %s: %d", p, res.StatusCode)
		}
	}
	const marker = "dashboard-cost-done"
	if err := rdb.Echo(ctx, marker).Err(); err != nil {
		t.Fatal(err)
	}
	cmds := m.until(t, marker)

	page := dashboard.DefaultPageSize
	seen := map[string]int{}
	for _, c := range cmds {
		name := strings.ToUpper(c[0])
		seen[name]++
		line := strings.Join(c, " ")
		switch name {
		case "KEYS", "HGETALL", "LRANGE":
			t.Errorf("ran %s", line)
		case "SCAN":
			// Topic discovery: streams only, bounded by COUNT, and at most
			// once per discovery interval, so one pass over this small
			// keyspace for all the pages.
			if seen[name] > 1 || countArg(c) <= 0 || countArg(c) > 1000 || !strings.Contains(strings.ToUpper(line), "TYPE STREAM") {
				t.Errorf("unbounded or repeated: %s", line)
			}
		case "XRANGE", "XREVRANGE":
			if n := countArg(c); n < 0 || n > page+1 {
				t.Errorf("unbounded or too large: %s", line)
			}
		case "XPENDING":
			if n, err := strconv.Atoi(c[len(c)-1]); err != nil || n > page {
				t.Errorf("unbounded or too large: %s", line)
			}
		case "ZRANGE":
			if stop, err := strconv.Atoi(c[3]); err != nil || stop < 0 || stop >= page {
				t.Errorf("unbounded or too large: %s", line)
			}
		}
	}
	for _, name := range []string{"XRANGE", "XPENDING", "ZRANGE", "XINFO"} {
		if seen[name] == 0 {
			t.Errorf("no %s seen: the monitor missed the page reads", name)
		}
	}
	// Overview and stats reads are shared within the sampling interval;
	// pages cost a fixed number of commands, whatever the number of jobs.
	if len(cmds) > 60 {
		t.Errorf("%d commands for %d pages over 2 topics:\n%s", len(cmds), len(pages), dump(cmds))
	}
	t.Logf("%d Redis commands for %d pages", len(cmds), len(pages))
}

// countArg returns the COUNT argument of c, or -1 without one.
func countArg(c []string) int {
	for i := 0; i+1 < len(c); i++ {
		if strings.EqualFold(c[i], "COUNT") {
			n, err := strconv.Atoi(c[i+1])
			if err != nil {
				return -1
			}
			return n
		}
	}
	return -1
}

func dump(cmds [][]string) string {
	var b strings.Builder
	for _, c := range cmds {
		fmt.Fprintln(&b, strings.Join(c, " "))
	}
	return b.String()
}
