package redis

import (
	"context"
	"errors"
	"slices"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// readMany is readShared in turn order on a single Redis, for count of at
// least one per stream, without readScript: like readOne, it pipelines a
// GET of each layout's pause key with plain XREADGROUP commands, whose
// replies Redis writes once and parseStreams reads without a map per
// entry (a script converts every entry to Lua and back, and its generic
// reply costs twice the allocations). One XREADGROUP COUNT c names every
// stream whose share is c (at most three commands), so no more than count
// entries are leased.
//
// Shares: a stream that gave nothing at the previous readMany (dry, such
// as the empty partitions of a retiring layout) gets one, so a job that
// arrived there since is read by this call; the others share the rest of
// count as shares gives it (equal parts, the extra ones rotating from
// call to call). Every stream is read at every call: a backlog in some
// streams never delays a job of another by more than one Fetch.
//
// The read is sent only while every stream was seen not paused less than
// Block ago (notePausedAll, by the previous read): otherwise readMany
// reports !ok and reads nothing, and readShared reads with readScript,
// which looks at the pause keys first (and records them). So, as with
// readOne, entries of a paused topic are read only when the pause landed
// within the last Block.
//
// When streams came back short of their share by more than the dry
// streams' probes (those are expected to come back empty), and others
// gave their whole share (and may hold more), what is left goes to the
// latter with readScript (one more round trip), as readScript would have
// shared it. So a Fetch leases at most count entries and, while entries
// wait, at least count less one per dry stream. When the dry streams
// would take more than a quarter of count, readMany reports !ok and
// readScript serves the call.
func (b *Broker) readMany(ctx context.Context, ks []keys, count int) (streams []streamEntries, paused map[int]bool, ok bool, err error) {
	n := len(ks)
	if n < 2 || count < n || !b.seenLive(ks) {
		return nil, nil, false, nil
	}
	shares, probes := b.manyShares(ks, count)
	if 4*probes > count {
		// Mostly dry streams: readScript fills count in one round trip.
		return nil, nil, false, nil
	}
	// The streams of each share, in ks order (XREADGROUP replies in the
	// order of the streams it names).
	var values []int
	for _, s := range shares {
		if !slices.Contains(values, s) {
			values = append(values, s)
		}
	}
	pipe := b.rdb.Pipeline()
	// One GET per layout of a topic: Pause and Resume write the pause keys
	// of every partition of each layout they know in one pipeline, so the
	// first partition of a layout in ks stands for the layout. Layouts are
	// not shared: a Pause that read a stale layout has paused the retiring
	// one, not the current one.
	gets := make([]*goredis.StringCmd, n)
	type layoutOf struct {
		topic string
		n     int
	}
	first := make(map[layoutOf]int, 1)
	for i, k := range ks {
		if j, ok := first[layoutOf{k.topic, k.n}]; ok {
			gets[i] = gets[j]
			continue
		}
		first[layoutOf{k.topic, k.n}] = i
		gets[i] = pipe.Get(ctx, k.paused)
	}
	reads := make([]*goredis.RawCmd, len(values))
	members := make([][]int, len(values))
	for j, c := range values {
		args := make([]string, 0, n)
		for i, s := range shares {
			if s == c {
				members[j] = append(members[j], i)
				args = append(args, ks[i].stream)
			}
		}
		reads[j] = b.newReadCmd(ctx, args, c)
		_ = pipe.Process(ctx, reads[j])
	}
	_, _ = pipe.Exec(ctx)
	var failure error
	for i, g := range gets {
		err := g.Err()
		if err != nil && !errors.Is(err, goredis.Nil) {
			// Not known: the read was sent all the same, and what it
			// leased is returned with the error.
			if failure == nil {
				failure = b.wrap("paused "+ks[i].topic, err)
			}
			continue
		}
		if err == nil {
			if paused == nil {
				paused = map[int]bool{}
			}
			paused[i] = true
		}
	}
	b.notePausedAll(ks, paused)
	got := make(map[string]int, n)
	failed := map[int]string{}
	for j, r := range reads {
		ss, err := readResult(r)
		switch {
		case err == nil:
			for _, s := range ss {
				got[s.stream] = len(s.entries)
			}
			streams = append(streams, ss...)
		case isNoGroup(err):
			// The command names several streams: the group of each is
			// recreated (ensureGroups skips those that exist); they are
			// read at the next call.
			for _, i := range members[j] {
				failed[i] = err.Error()
			}
		default:
			if failure == nil {
				failure = b.wrap("read", err)
			}
		}
	}
	if err := b.readFailed(ctx, ks, failed); err != nil && failure == nil {
		failure = err
	}
	b.noteDry(ks, got)
	if failure != nil {
		return streams, paused, true, failure
	}
	left := count
	var more []keys
	for i, k := range ks {
		g := got[k.stream]
		left -= g
		if g == shares[i] && !paused[i] {
			more = append(more, k)
		}
	}
	if left <= probes || len(more) == 0 {
		return streams, paused, true, nil
	}
	extra, err := b.readRest(ctx, more, left)
	return append(streams, extra...), paused, true, err
}

// manyShares returns readMany's shares of count among ks: one for each
// dry stream, the rest shared among the others by shares (among all of
// them when every one is dry), and how many dry streams got one.
// count >= len(ks).
func (b *Broker) manyShares(ks []keys, count int) ([]int, int) {
	out := make([]int, len(ks))
	var wet []int
	b.mu.Lock()
	for i, k := range ks {
		if b.dry[k.id] {
			out[i] = 1
		} else {
			wet = append(wet, i)
		}
	}
	b.mu.Unlock()
	if len(wet) == 0 {
		return b.shares(len(ks), count), 0
	}
	probes := len(ks) - len(wet)
	for j, s := range b.shares(len(wet), count-probes) {
		out[wet[j]] = s
	}
	return out, probes
}

// noteDry records which streams of ks gave nothing (got: entries by
// stream name).
func (b *Broker) noteDry(ks []keys, got map[string]int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dry == nil || len(b.dry)+len(ks) > maxKeyCache {
		b.dry = map[string]bool{}
	}
	for _, k := range ks {
		if got[k.stream] == 0 {
			b.dry[k.id] = true
		} else {
			delete(b.dry, k.id)
		}
	}
}

// readRest reads up to count entries from the streams of ks with
// readScript in turn order, from the first stream, for readMany.
func (b *Broker) readRest(ctx context.Context, ks []keys, count int) ([]streamEntries, error) {
	names := make([]string, len(ks))
	keys := make([]string, 2*len(ks))
	for i, k := range ks {
		names[i] = k.stream
		keys[i], keys[len(ks)+i] = k.stream, k.paused
	}
	res, err := readScript.Run(ctx, b.rdb, keys, b.o.Group, b.o.Consumer, count, "turn", 0).Slice()
	if err != nil {
		return nil, b.wrap("read", err)
	}
	r, err := parseRead(res, names)
	if err != nil {
		return nil, b.wrap("read", err)
	}
	b.notePausedAll(ks, r.paused)
	return r.streams, b.readFailed(ctx, ks, r.failed)
}

// notePausedAll records that the streams of ks were seen paused (those in
// paused, by index) or not just now.
func (b *Broker) notePausedAll(ks []keys, paused map[int]bool) {
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pauseSeen == nil || len(b.pauseSeen)+len(ks) > maxKeyCache {
		b.pauseSeen = map[string]pauseSeen{}
	}
	for i, k := range ks {
		b.pauseSeen[k.id] = pauseSeen{paused: paused[i], at: now}
	}
}

// seenLive reports whether every stream of ks was seen not paused less
// than Block ago (see notePaused).
func (b *Broker) seenLive(ks []keys) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, k := range ks {
		seen, ok := b.pauseSeen[k.id]
		if !ok || seen.paused || time.Since(seen.at) > b.o.Block {
			return false
		}
	}
	return true
}
