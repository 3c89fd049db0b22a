package redis

import (
	"context"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/internal/redistest"
)

// clusterWindowEnv is a broker on a 3-master Cluster whose commands are
// logged, with topic "t" in 12 partitions (and its retiring layout 1).
func clusterWindowEnv(t *testing.T) (context.Context, *Broker, *redistest.CommandLog) {
	t.Helper()
	c := redistest.StartCluster(t, 3)
	return loggedPartitionedBroker(t, c.Client(t), c.Namespace, 500*time.Millisecond, 12)
}

// TestClusterReadWindow: on Cluster, a Fetch of 32 over 13 streams reads a
// window of two of them (plain XREADGROUPs once the pause keys were seen,
// no script), moving on at every call, so every partition with a backlog
// is read within 13 Fetches; a window that comes back short is topped up
// from the other streams in the same Fetch; never more than max is
// leased; a pause is honoured from the read that sees it.
func TestClusterReadWindow(t *testing.T) {
	t.Parallel()
	ctx, b, log := clusterWindowEnv(t)
	rdb := b.rdb
	keys := make([]string, 12)
	for i := range keys {
		keys[i] = keyIn(t, i, 12)
		publishTo(t, ctx, b, keys[i], 20)
	}
	pending := func() int64 {
		t.Helper()
		ks, err := b.allKeys(ctx, "t")
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, k := range ks {
			p, err := rdb.XPending(ctx, k.stream, b.o.Group).Result()
			if err == nil {
				n += p.Count
			}
		}
		return n
	}
	total := 0
	fetch := func(max int) int {
		t.Helper()
		ds, err := b.Fetch(ctx, []string{"t"}, max)
		if err != nil || len(ds) > max {
			t.Fatalf("Fetch of %d: %d, %v", max, len(ds), err)
		}
		total += len(ds)
		if n := pending(); n != int64(total) {
			t.Fatalf("%d entries leased, %d fetched", n, total)
		}
		return len(ds)
	}
	// A Fetch large enough to read every stream sees every pause key.
	fetch(13 * windowShare)
	for i := range keys {
		publishTo(t, ctx, b, keys[i], 40)
	}
	log.Take()
	seen := map[string]bool{}
	reads := 0
	for range 13 {
		ds, err := b.Fetch(ctx, []string{"t"}, 32)
		if err != nil || len(ds) != 32 {
			t.Fatalf("Fetch of 32 with a backlog: %d, %v", len(ds), err)
		}
		total += len(ds)
		for _, d := range ds {
			seen[d.Job.Key] = true
		}
		for _, c := range log.Take() {
			switch c {
			case "evalsha", "eval":
				t.Fatalf("a script was run to read")
			case "xreadgroup":
				reads++
			}
		}
	}
	if n := pending(); n != int64(total) {
		t.Fatalf("%d entries leased, %d fetched", n, total)
	}
	for _, k := range keys {
		if !seen[k] {
			t.Errorf("partition of %q not read in 13 Fetches", k)
		}
	}
	if reads >= 13*13/2 {
		t.Errorf("%d XREADGROUPs in 13 Fetches: the reads are not windowed", reads)
	}
	// What is left sits in fewer and fewer partitions: a Fetch still
	// returns jobs whatever its window.
	left := 12*60 - total
	for left > 0 {
		got := fetch(32)
		if got == 0 {
			t.Fatalf("Fetch of 32 with %d waiting gave none", left)
		}
		left -= got
	}
	// Pause: the read that sees it may take jobs; none after it.
	for i := range keys {
		publishTo(t, ctx, b, keys[i], 2)
	}
	fetch(4)
	if err := b.Pause(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	fetch(4)
	for range 3 {
		if got := fetch(4); got != 0 {
			t.Fatalf("Fetch of a paused topic gave %d", got)
		}
	}
}
