package reliability

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/internal/logtest"
)

// ledger counts what handlers did with each job ID, in process: how often a
// job was delivered to a handler and how often a handler finished it
// successfully. It is safe for concurrent use.
type ledger struct {
	mu         sync.Mutex
	deliveries map[string]int
	done       map[string]int
}

func newLedger() *ledger {
	return &ledger{deliveries: map[string]int{}, done: map[string]int{}}
}

// delivered records that a handler received id.
func (l *ledger) delivered(id string) {
	l.mu.Lock()
	l.deliveries[id]++
	l.mu.Unlock()
}

// succeeded records that a handler returned nil for id.
func (l *ledger) succeeded(id string) {
	l.mu.Lock()
	l.done[id]++
	l.mu.Unlock()
}

// Done returns a copy of the success counts.
func (l *ledger) Done() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.done)
}

// Deliveries returns how often id was delivered.
func (l *ledger) Deliveries(id string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.deliveries[id]
}

// DoneCount returns how many distinct IDs succeeded.
func (l *ledger) DoneCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.done)
}

// store is what the accounting needs from a broker: topic state and dead
// letters.
type store interface {
	broker.Inspector
	broker.DeadLetterAdmin
}

// accounting is the final tally of a run.
type accounting struct {
	Published    int
	Processed    int            // distinct IDs a handler finished successfully
	DeadLettered int            // distinct IDs in the dead-letter topic
	Duplicates   int            // extra successful runs: sum over IDs of (runs - 1)
	DupIDs       []string       // IDs that ran successfully more than once (first 10)
	Both         []string       // IDs both processed and dead-lettered
	DeadDupes    int            // extra dead letters of the same ID
	Reasons      map[string]int // dead letters by Failure.Reason
	Missing      []string       // published IDs neither processed nor dead-lettered
	Info         *broker.TopicInfo
	DeadByID     map[string]broker.DeadLetter
}

func (a *accounting) String() string {
	return fmt.Sprintf("published=%d processed=%d dead-lettered=%d missing=%d duplicates=%d dead-letter-duplicates=%d processed-and-dead=%d reasons=%v",
		a.Published, a.Processed, a.DeadLettered, len(a.Missing), a.Duplicates, a.DeadDupes, len(a.Both), a.Reasons)
}

// settled reports whether every published job is accounted for and the topic
// holds nothing more: no unread or pending entry, no delayed job.
func (a *accounting) settled() bool {
	return len(a.Missing) == 0 && a.Info != nil && a.Info.Length == 0 && a.Info.Pending == 0 && a.Info.Delayed == 0
}

// tally computes the accounting of published IDs on topic now.
func tally(ctx context.Context, s store, topic string, published []string, done map[string]int) (*accounting, error) {
	a := &accounting{Published: len(published), Reasons: map[string]int{}, DeadByID: map[string]broker.DeadLetter{}}
	info, err := s.Inspect(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("inspect %s: %w", topic, err)
	}
	a.Info = info
	after := ""
	for {
		page, err := s.DeadLetters(ctx, topic, after, 1000)
		if err != nil {
			return nil, fmt.Errorf("list dead letters of %s: %w", topic, err)
		}
		for _, dl := range page {
			if _, dup := a.DeadByID[dl.Job.ID]; dup {
				a.DeadDupes++
			} else {
				a.DeadByID[dl.Job.ID] = dl
			}
			reason := "<none>"
			if dl.Job.Failure != nil {
				reason = dl.Job.Failure.Reason
			}
			a.Reasons[reason]++
		}
		if len(page) < 1000 {
			break
		}
		after = page[len(page)-1].ID
	}
	for _, id := range published {
		n, ok := done[id]
		_, dead := a.DeadByID[id]
		switch {
		case ok && dead:
			a.Both = append(a.Both, id)
			a.Processed++
			a.DeadLettered++
		case ok:
			a.Processed++
		case dead:
			a.DeadLettered++
		default:
			a.Missing = append(a.Missing, id)
		}
		if n > 1 {
			a.Duplicates += n - 1
			if len(a.DupIDs) < 10 {
				a.DupIDs = append(a.DupIDs, id)
			}
		}
	}
	return a, nil
}

// waitAccounted polls until every published job on topic is processed or
// dead-lettered and the topic is empty, or timeout passes, in which case it
// fails the test with what is missing. It logs duplicates (allowed under
// at-least-once where a worker crashed or lost a lease, but reported) and
// returns the final accounting; scenarios that must produce none check it
// with requireNoDuplicates.
func waitAccounted(t testing.TB, s store, topic string, published []string, done func() map[string]int, timeout time.Duration) *accounting {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(timeout)
	var (
		a       *accounting
		lastErr error
	)
	poll := 20 * time.Millisecond
	for {
		var err error
		a, err = tally(ctx, s, topic, published, done())
		switch {
		case err != nil:
			lastErr = err
		case a.settled():
			reportAccounting(t, topic, a)
			return a
		}
		if time.Now().After(deadline) {
			break
		}
		// Waiting on other processes' progress: there is nothing to block on.
		time.Sleep(poll)
		poll = min(poll*2, 500*time.Millisecond)
	}
	if a == nil {
		t.Fatalf("accounting of %s: %v", topic, lastErr)
	}
	missing := a.Missing
	if len(missing) > 20 {
		missing = missing[:20]
	}
	t.Fatalf("accounting of %s not settled after %v: %s; topic state %+v; first missing IDs %v (last error: %v)",
		topic, timeout, a, *a.Info, missing, lastErr)
	return nil
}

// requireNoDuplicates fails the test when a job ran successfully more than
// once, or was both processed and dead-lettered, or dead-lettered twice: a
// scenario with no crash and no lost lease (a graceful shutdown, a long job
// kept by heartbeat) must produce none, so a duplicate there is a bug (an
// acknowledgement lost at shutdown, a lease stolen from a live worker)
// rather than at-least-once delivery at work. why names the scenario.
func requireNoDuplicates(t testing.TB, a *accounting, why string) {
	t.Helper()
	if a.Duplicates > 0 {
		t.Errorf("%s must run each job once: %d extra successful runs, e.g. %v", why, a.Duplicates, a.DupIDs)
	}
	if len(a.Both) > 0 {
		t.Errorf("%s must run each job once: %d jobs both processed and dead-lettered, e.g. %v", why, len(a.Both), head(a.Both))
	}
	if a.DeadDupes > 0 {
		t.Errorf("%s must dead-letter each job once: %d extra dead letters", why, a.DeadDupes)
	}
}

// reportAccounting logs the tally, with the IDs involved in duplicates.
func reportAccounting(t testing.TB, topic string, a *accounting) {
	t.Helper()
	t.Logf("accounting %s: %s", topic, a)
	if a.Duplicates > 0 {
		t.Logf("duplicates (at-least-once redeliveries, allowed): %d extra runs, e.g. %v", a.Duplicates, a.DupIDs)
	}
	if len(a.Both) > 0 {
		both := a.Both
		if len(both) > 10 {
			both = both[:10]
		}
		t.Logf("processed and also dead-lettered (at-least-once): %d, e.g. %v", len(a.Both), both)
	}
}

// ids returns n job IDs "<prefix>-00000" ….
func ids(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%06d", prefix, i)
	}
	return out
}

// publishAll publishes one job per ID to topic with payload(id), in batches,
// and returns the IDs the broker reports (which must equal ids).
func publishAll(t testing.TB, b broker.Broker, topic string, ids []string, payload func(id string) []byte) {
	t.Helper()
	ctx := context.Background()
	const batch = 500
	for start := 0; start < len(ids); start += batch {
		end := min(start+batch, len(ids))
		ms := make([]broker.Message, 0, end-start)
		for _, id := range ids[start:end] {
			ms = append(ms, broker.Message{Topic: topic, ID: id, Payload: payload(id)})
		}
		got, err := b.PublishBatch(ctx, ms)
		if err != nil {
			t.Fatalf("publish %d jobs to %s: %v", len(ms), topic, err)
		}
		if !slices.Equal(got, ids[start:end]) {
			t.Fatalf("PublishBatch returned IDs %v…, want the given ones %v…", head(got), head(ids[start:end]))
		}
	}
}

func head(s []string) []string {
	if len(s) > 3 {
		return s[:3]
	}
	return s
}

// waitFor polls cond until it is true or timeout passes, then fails the test
// with what.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	poll := 5 * time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(poll) // polling another process or goroutine's progress
		poll = min(poll*2, 200*time.Millisecond)
	}
}

// logLines is a concurrency-safe slog sink for asserting on log output.
type logLines struct{ logtest.Buffer }

// Contains reports whether the output so far contains s.
func (l *logLines) Contains(s string) bool { return strings.Contains(l.String(), s) }
