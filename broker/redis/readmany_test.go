package redis

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/internal/redistest"
)

// readManyEnv is a broker on a single Redis whose commands are logged,
// with topic "t" in 4 partitions (and its retiring layout 1).
func readManyEnv(t *testing.T) (context.Context, *Broker, *redistest.CommandLog, goredis.UniversalClient) {
	t.Helper()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	ctx, b, log := loggedPartitionedBroker(t, rdb, srv.Namespace, 20*time.Millisecond, 4)
	return ctx, b, log, rdb
}

// loggedPartitionedBroker returns a broker on rdb whose commands are
// logged, with topic "t" in partitions partitions.
func loggedPartitionedBroker(t *testing.T, rdb goredis.UniversalClient, ns string, block time.Duration, partitions int) (context.Context, *Broker, *redistest.CommandLog) {
	t.Helper()
	log := &redistest.CommandLog{}
	rdb.AddHook(log)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	b, err := New(rdb, &Options{Namespace: ns, Block: block, ClaimInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	if err := b.SetPartitions(ctx, "t", partitions); err != nil {
		t.Fatal(err)
	}
	return ctx, b, log
}

// keyIn returns a key whose jobs go to partition i of n.
func keyIn(t *testing.T, i, n int) string {
	t.Helper()
	for j := 0; ; j++ {
		if k := "k" + strconv.Itoa(j); broker.PartitionFor(k, n) == i {
			return k
		}
	}
}

func publishTo(t *testing.T, ctx context.Context, b *Broker, key string, n int) {
	t.Helper()
	ms := make([]broker.Message, n)
	for i := range ms {
		ms[i] = broker.Message{Topic: "t", Key: key, Payload: []byte(key)}
	}
	if _, err := b.PublishBatch(ctx, ms); err != nil {
		t.Fatal(err)
	}
}

// pendingTotal is how many entries of t's partitions are leased.
func pendingTotal(t *testing.T, ctx context.Context, b *Broker, rdb goredis.UniversalClient) int64 {
	t.Helper()
	ks, err := b.allKeys(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, k := range ks {
		p, err := rdb.XPending(ctx, k.stream, b.o.Group).Result()
		if err != nil && !strings.HasPrefix(err.Error(), "NOGROUP") {
			t.Fatal(err)
		}
		if p != nil {
			n += p.Count
		}
	}
	return n
}

// TestReadManyPlainAndFair: once a Fetch of a partitioned topic has seen
// its partitions unpaused, the next reads are plain XREADGROUPs (no
// script) pipelined with the pause keys' GETs; every partition with a
// backlog gets its share of max, and no more than max entries are
// leased.
func TestReadManyPlainAndFair(t *testing.T) {
	ctx, b, log, rdb := readManyEnv(t)
	keys := make([]string, 4)
	for i := range keys {
		keys[i] = keyIn(t, i, 4)
		publishTo(t, ctx, b, keys[i], 10)
	}
	// The first Fetch sees the pause keys with the read script.
	if ds, err := b.Fetch(ctx, []string{"t"}, 8); err != nil || len(ds) != 8 {
		t.Fatalf("first Fetch: %d, %v", len(ds), err)
	}
	// The second reads with XREADGROUP and learns that the retiring
	// layout's stream is empty (it tops up with the script: it gave less
	// than expected).
	if ds, err := b.Fetch(ctx, []string{"t"}, 8); err != nil || len(ds) != 8 {
		t.Fatalf("second Fetch: %d, %v", len(ds), err)
	}
	log.Take()
	// The third gives the empty stream one probe, each partition its
	// share of the rest.
	ds, err := b.Fetch(ctx, []string{"t"}, 8)
	if err != nil || len(ds) != 7 {
		t.Fatalf("third Fetch: %d, %v; want 7 (8 less the empty stream's probe)", len(ds), err)
	}
	cmds := log.Take()
	per := map[string]int{}
	for _, d := range ds {
		per[d.Job.Key]++
	}
	for _, k := range keys {
		if per[k] < 1 || per[k] > 2 {
			t.Errorf("partition of %q gave %d of 7 (%v), want 2 or 1 each", k, per[k], per)
		}
	}
	gets, reads := 0, 0
	for _, c := range cmds {
		switch c {
		case "evalsha", "eval":
			t.Errorf("a script was run: %v", cmds)
		case "get":
			gets++
		case "xreadgroup":
			reads++
		}
	}
	if gets != 2 || reads < 1 {
		t.Errorf("commands %v: want a GET of each layout's pause key (2 for the 5 streams) and XREADGROUP", cmds)
	}
	if n := pendingTotal(t, ctx, b, rdb); n != 23 {
		t.Errorf("%d entries leased after Fetches of 8, 8 and 7", n)
	}
}

// TestReadManyDryPartition: a partition that gave nothing still gets one
// of max at every read, so a job arriving there behind a backlog in
// another partition comes with the next Fetch; what empty partitions
// leave goes to the backlog (never more than max leased).
func TestReadManyDryPartition(t *testing.T) {
	ctx, b, log, rdb := readManyEnv(t)
	hot, cold := keyIn(t, 0, 4), keyIn(t, 2, 4)
	publishTo(t, ctx, b, hot, 100)
	total := 0
	for range 3 {
		ds, err := b.Fetch(ctx, []string{"t"}, 16)
		if err != nil || len(ds) < 12 || len(ds) > 16 {
			t.Fatalf("Fetch of 16: %d, %v; want 16 less the probes of empty streams", len(ds), err)
		}
		total += len(ds)
	}
	if n := pendingTotal(t, ctx, b, rdb); n != int64(total) {
		t.Fatalf("%d entries leased, %d fetched", n, total)
	}
	publishTo(t, ctx, b, cold, 1)
	log.Take()
	ds, err := b.Fetch(ctx, []string{"t"}, 16)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range log.Take() {
		if c == "evalsha" || c == "eval" {
			t.Errorf("a script was run")
		}
	}
	found := false
	for _, d := range ds {
		found = found || d.Job.Key == cold
	}
	if !found || len(ds) > 16 {
		t.Fatalf("Fetch of 16 gave %d jobs, the cold one among them: %v", len(ds), found)
	}
	total += len(ds)
	if n := pendingTotal(t, ctx, b, rdb); n != int64(total) {
		t.Fatalf("%d entries leased, %d fetched", n, total)
	}
}

// TestReadManyPaused: a pause lands at the next read (its GET comes back
// with it); from then on the topic is neither read nor leased until
// resumed.
func TestReadManyPaused(t *testing.T) {
	ctx, b, log, rdb := readManyEnv(t)
	for i := range 4 {
		publishTo(t, ctx, b, keyIn(t, i, 4), 10)
	}
	total := 0
	for range 2 {
		ds, err := b.Fetch(ctx, []string{"t"}, 8)
		if err != nil {
			t.Fatal(err)
		}
		total += len(ds)
	}
	if err := b.Pause(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	// This read was sent with the GETs (the topic was seen unpaused): it
	// may take jobs, and it sees the pause.
	ds, _ := b.Fetch(ctx, []string{"t"}, 8)
	total += len(ds)
	log.Take()
	for range 3 {
		ds, err := b.Fetch(ctx, []string{"t"}, 8)
		if len(ds) != 0 || err != nil {
			t.Fatalf("Fetch of a paused topic: %d jobs, %v", len(ds), err)
		}
	}
	for _, c := range log.Take() {
		if c == "xreadgroup" {
			t.Fatalf("a paused topic was read with XREADGROUP")
		}
	}
	if n := pendingTotal(t, ctx, b, rdb); n != int64(total) {
		t.Fatalf("%d entries leased, %d fetched", n, total)
	}
	if err := b.Resume(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	got := 0
	for got < 40-total {
		ds, err := b.Fetch(ctx, []string{"t"}, 8)
		if err != nil {
			t.Fatal(err)
		}
		got += len(ds)
	}
	if n := pendingTotal(t, ctx, b, rdb); n != 40 {
		t.Fatalf("%d entries leased, 40 fetched", n)
	}
}

// TestReadManyLayoutPausedApart: a pause that reached one layout of a topic
// and not the other (a Pause that read a stale layout writes the retiring
// layout's key only) holds the paused layout's entries from the read that
// sees it on: one layout's pause key never stands for another's.
func TestReadManyLayoutPausedApart(t *testing.T) {
	ctx, b, log, rdb := readManyEnv(t)
	for i := range 4 {
		publishTo(t, ctx, b, keyIn(t, i, 4), 10)
	}
	for range 2 {
		if _, err := b.Fetch(ctx, []string{"t"}, 8); err != nil {
			t.Fatal(err)
		}
	}
	retiring := b.makeKeys("t")
	for range 5 {
		if err := rdb.XAdd(ctx, &goredis.XAddArgs{Stream: retiring.stream, Values: []any{"payload", "retiring"}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := rdb.Set(ctx, retiring.paused, "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	// The first read was sent with the GETs: it may take entries of the
	// retiring layout, and it sees its pause.
	if _, err := b.Fetch(ctx, []string{"t"}, 8); err != nil {
		t.Fatal(err)
	}
	log.Take()
	current := 0
	for range 5 {
		ds, err := b.Fetch(ctx, []string{"t"}, 8)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			if string(d.Job.Payload) == "retiring" {
				t.Fatalf("an entry of the paused layout was fetched after its pause was seen (commands %v)", log.Take())
			}
			current++
		}
	}
	if current == 0 {
		t.Fatal("the current layout, not paused, gave nothing")
	}
}
