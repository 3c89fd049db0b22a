package redis

import (
	"context"
	"errors"

	goredis "github.com/redis/go-redis/v9"
)

// windowShare is the share of a Fetch each stream read on Cluster should
// get at least: a Fetch of count entries over more than count/windowShare
// streams reads a window of count/windowShare of them (see readWindow).
const windowShare = 16

// readWindow is readShares in turn order on Cluster, where every stream
// read and every stream settled costs its own commands on its master
// (XREADGROUP, XACK, XDEL: with 12 partitions and a Fetch of 64, each
// would carry about 5 entries). When count leaves fewer than windowShare
// entries per stream, it reads a window of w = count/windowShare streams
// (at least one), spread over ks (so over the masters: the partitions of
// a topic are in consecutive slot ranges) and moving on by one stream at
// every call, each with its share of count; only when the window gave
// fewer than count does it read the other streams, with what is left, in
// a second pipeline. So every stream with entries is read at least once
// in every len(ks) calls made while the window's streams have more, and
// at once when they run short; a Fetch never leases more than count.
func (b *Broker) readWindow(ctx context.Context, ks []keys, avail []int, count int, o order) ([]streamEntries, error) {
	n := len(ks)
	w := max(1, count/windowShare)
	if w >= n {
		return b.readShares(ctx, ks, avail, count, o)
	}
	start := int((b.windowTurn.Add(1) - 1) % uint64(n))
	step := n / w
	in := make([]bool, n)
	window := make([]keys, 0, w)
	for t := range w {
		i := (start + t*step) % n
		in[i] = true
		window = append(window, ks[i])
	}
	streams, got, err := b.readEach(ctx, window, b.windowShares(w, count))
	left := count
	for _, g := range got {
		left -= g
	}
	if left <= 0 {
		return streams, err
	}
	// A stream of the window that failed (or came back short) leaves its
	// share to the others: they are read too, and the failure is reported
	// with what they gave.
	rest := make([]keys, 0, n-w)
	for i, k := range ks {
		if !in[i] {
			rest = append(rest, k)
		}
	}
	more, merr := b.readShares(ctx, rest, nil, left, o)
	return append(streams, more...), errors.Join(err, merr)
}

// windowShares splits count among the w streams of a window: count/w
// each, the first count%w one more (the window moves on at every call).
func (b *Broker) windowShares(w, count int) []int {
	out := make([]int, w)
	for i := range out {
		out[i] = count / w
		if i < count%w {
			out[i]++
		}
	}
	return out
}

// readEachPlain is readEach without readScript, as readMany on a single
// Redis: once every stream to read was seen not paused less than Block
// ago, each stream is read with a GET of its pause key and a plain
// XREADGROUP COUNT counts[i], all in one pipeline (go-redis sends each
// master its part at once). A script would convert every entry to Lua and
// back, which on Cluster costs its masters more than the read itself.
// Entries of a paused stream are read only when the pause landed within
// the last Block (its GET comes back with them, and the next read sees
// it). It reports !ok, reading nothing, when some stream was not seen
// unpaused.
func (b *Broker) readEachPlain(ctx context.Context, ks []keys, counts []int) ([]streamEntries, []int, bool, error) {
	var idx []int
	for i := range ks {
		if counts[i] > 0 {
			idx = append(idx, i)
		}
	}
	got := make([]int, len(ks))
	if len(idx) == 0 {
		return nil, got, true, nil
	}
	sub := make([]keys, len(idx))
	for j, i := range idx {
		sub[j] = ks[i]
	}
	if !b.seenLive(sub) {
		return nil, nil, false, nil
	}
	pipe := b.rdb.Pipeline()
	gets := make([]*goredis.StringCmd, len(idx))
	reads := make([]*goredis.XStreamSliceCmd, len(idx))
	for j, i := range idx {
		gets[j] = pipe.Get(ctx, ks[i].paused)
		reads[j] = pipe.XReadGroup(ctx, &goredis.XReadGroupArgs{
			Group: b.o.Group, Consumer: b.o.Consumer,
			Streams: []string{ks[i].stream, ">"}, Count: int64(counts[i]), Block: -1,
		})
	}
	_, _ = pipe.Exec(ctx)
	var out []streamEntries
	paused := map[int]bool{}
	failed := map[int]string{}
	var first error
	for j, i := range idx {
		switch err := gets[j].Err(); {
		case err == nil:
			paused[j] = true
		case errors.Is(err, goredis.Nil):
		default:
			if first == nil {
				first = b.wrap("paused "+ks[i].topic, err)
			}
		}
		ss, err := reads[j].Result()
		switch {
		case err == nil:
			for _, s := range ss {
				got[i] += len(s.Messages)
			}
			out = append(out, entriesOf(ss)...)
		case errors.Is(err, goredis.Nil):
		case isNoGroup(err):
			failed[i] = err.Error()
		default:
			if first == nil {
				first = b.wrap("read "+ks[i].topic, err)
			}
		}
	}
	b.notePausedAll(sub, paused)
	if err := b.readFailed(ctx, ks, failed); err != nil && first == nil {
		first = err
	}
	return out, got, true, first
}
