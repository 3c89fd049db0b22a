package redis

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/internal/share"
	"github.com/conveyor-jobs/conveyor/job"
)

// promoteBatch bounds how many delayed jobs one promotion script moves.
const promoteBatch = 500

// recoverRounds bounds the XAUTOCLAIM calls per topic per Fetch; an
// unfinished scan resumes from its cursor at the next Fetch.
const recoverRounds = 8

// Fetch returns up to max jobs from topics, each leased to this consumer.
//
// In order, it returns deliveries an earlier Fetch kept; every
// ClaimInterval, promotes due delayed jobs and recovers entries whose lease
// expired (XAUTOCLAIM), dead-lettering poison entries; promotes the delayed
// jobs of topics whose earliest delayed job is due (see below); then reads
// new entries. It never leases more than max entries while entries are
// waiting: with several topics (or a partitioned topic), one script goes
// round all their streams, giving each stream that has entries an equal
// part of max, starting after the stream that was served last, so every
// topic with a backlog is served in turn and a Fetch returns jobs whenever
// any topic has some; once the streams were seen unpaused, plain
// XREADGROUPs share max the same way in one round trip (a stream that
// gave nothing last time gets one; see readMany). When none is
// waiting, it blocks up to Options.Block on all the topics' streams at once
// (one entry each when there are more topics than max; entries that arrive
// on several streams at the same moment beyond max are kept for the next
// Fetch). Within a topic, jobs come in FIFO order. On Redis Cluster, where
// one command cannot read streams of several slots, Fetch reads each stream
// with its own share of max in one pipeline (when max leaves fewer than
// 16 per stream, a window of max/16 streams that moves on at every call,
// topped up from the others when it comes back short; see readWindow); with more topics than max it
// first asks every stream whether it has unread entries (one pipeline,
// leasing nothing) and shares max among those that have. It polls every
// Block/10 until Block has passed.
//
// Delayed jobs (delayed publishes, Retry, Snooze) are promoted when due: the
// broker keeps the due time of each topic's earliest delayed job, learned
// at every promotion and lowered when this broker adds a delayed job, and a
// waiting Fetch promotes at that time, which ends its wait. A delayed job
// added by another process is learned at the next ClaimInterval promotion.
//
// A paused topic (see [Broker.Pause]) is neither read, nor waited on, nor
// recovered; the pause keys are read by the same script or pipeline as the
// entries.
//
// Cancelling ctx does not interrupt a blocking read: Fetch returns ctx.Err()
// when it comes back empty. Close makes a waiting Fetch return ErrClosed
// within Block. Entries without a payload are dead-lettered with reason
// [ReasonMalformed] instead of being returned. A topic that is empty or
// contains '{' or '}' is rejected with an error wrapping
// broker.ErrInvalidMessage (see [ValidateTopic]).
func (b *Broker) Fetch(ctx context.Context, topics []string, max int) ([]*broker.Delivery, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	if max <= 0 || len(topics) == 0 {
		return nil, nil
	}
	ks, err := b.topicKeys(ctx, topics)
	if err != nil {
		return nil, err
	}
	return b.fetch(ctx, ks, max, order{})
}

// topicKeys validates topics and returns their keys, without duplicates,
// in the order given: for a partitioned topic, the keys of each of its
// partitions (see allKeys).
func (b *Broker) topicKeys(ctx context.Context, topics []string) ([]keys, error) {
	ks := make([]keys, 0, len(topics))
	seen := map[string]bool{}
	for _, t := range topics {
		if err := ValidateTopic(t); err != nil {
			return nil, err
		}
		if seen[t] {
			continue
		}
		seen[t] = true
		parts, err := b.allKeys(ctx, t)
		if err != nil {
			return nil, err
		}
		ks = append(ks, parts...)
	}
	return ks, nil
}

// fetch is Fetch of the topics of ks, sharing max among them as o says.
func (b *Broker) fetch(ctx context.Context, ks []keys, max int, o order) ([]*broker.Delivery, error) {
	seen := make(map[string]bool, len(ks))
	for _, k := range ks {
		seen[k.topic] = true
	}
	out, err := b.takeBuffered(ctx, seen, max)
	if err != nil || len(out) >= max {
		return out, err
	}
	streams := make([]string, len(ks))
	for i, k := range ks {
		streams[i] = k.stream
	}
	if err := b.ensureGroups(ctx, streams...); err != nil {
		b.keep(out)
		return nil, err
	}
	if err := b.registerTopics(ctx, ks); err != nil {
		b.keep(out)
		return nil, err
	}
	// Maintenance errors are logged per topic by maintain; they do not fail
	// the Fetch, which still returns what was recovered and reads new jobs.
	rec, _ := b.maintain(ctx, ks, max-len(out))
	out = append(out, rec...)
	b.drainRetired(ctx, ks)
	got, err := b.read(ctx, ks, max-len(out), len(out) == 0, o)
	if b.closed.Load() {
		if !b.owned {
			b.release(append(out, got...))
		}
		return nil, broker.ErrClosed
	}
	out = append(out, got...)
	if err != nil {
		if len(out) == 0 {
			return nil, err
		}
		// What was read is leased to this consumer: hand it out now rather
		// than let its lease expire and spend an attempt.
		b.log.Error("conveyor/redis: read failed for some topics; returning the jobs read from the others", "err", err)
	}
	if len(out) > max {
		// A wait on several streams returned entries of more than one
		// (they arrived at the same moment): the next Fetch returns the
		// extras first.
		b.keep(out[max:])
		out = out[:max]
	}
	if len(out) == 0 {
		return nil, ctx.Err()
	}
	return out, nil
}

// keep buffers deliveries read beyond a Fetch's max.
func (b *Broker) keep(ds []*broker.Delivery) {
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, d := range ds {
		b.buf = append(b.buf, &buffered{d: d, at: now})
	}
}

// unbuffer drops buffered deliveries of k's stream that recovery has just
// claimed again (they sat in the buffer past the lease), so they are not
// handed out twice.
func (b *Broker) unbuffer(k keys, claimed []goredis.XMessage) {
	topic := k.topic
	ids := make(map[string]bool, len(claimed))
	for _, m := range claimed {
		ids[k.receipt(m.ID)] = true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	rest := b.buf[:0]
	for _, e := range b.buf {
		if e.d.Job.Topic != topic || !ids[e.d.Receipt] {
			rest = append(rest, e)
		}
	}
	clear(b.buf[len(rest):])
	b.buf = rest
}

// takeBuffered returns up to max buffered deliveries of topics. Those held
// longer than a third of the lease have their lease renewed first; any this
// consumer no longer owns are dropped (another consumer has them).
func (b *Broker) takeBuffered(ctx context.Context, topics map[string]bool, max int) ([]*broker.Delivery, error) {
	b.mu.Lock()
	var take []*buffered
	rest := b.buf[:0]
	for _, e := range b.buf {
		if len(take) < max && topics[e.d.Job.Topic] {
			take = append(take, e)
		} else {
			rest = append(rest, e)
		}
	}
	clear(b.buf[len(rest):])
	b.buf = rest
	b.mu.Unlock()
	if len(take) == 0 {
		return nil, nil
	}
	var old []*broker.Delivery
	for _, e := range take {
		if time.Since(e.at) > b.o.Lease/3 {
			old = append(old, e.d)
		}
	}
	owned := map[string]bool{}
	if len(old) > 0 {
		var err error
		if owned, err = b.stillOwned(ctx, old); err != nil {
			ds := make([]*broker.Delivery, len(take))
			for i, e := range take {
				ds[i] = e.d
			}
			b.keep(ds)
			return nil, err
		}
	}
	out := make([]*broker.Delivery, 0, len(take))
	for _, e := range take {
		if time.Since(e.at) > b.o.Lease/3 && !owned[e.d.Job.Topic+"\x00"+e.d.Receipt] {
			continue
		}
		out = append(out, e.d)
	}
	return out, nil
}

// stillOwned renews the lease of ds and reports which this consumer still
// owns, keyed by topic + "\x00" + receipt.
func (b *Broker) stillOwned(ctx context.Context, ds []*broker.Delivery) (map[string]bool, error) {
	groups := b.byStream(ds, nil)
	renewed, err := b.extendStreams(ctx, groups)
	if err != nil {
		return nil, b.wrap("renew buffered leases", err)
	}
	owned := map[string]bool{}
	for i, g := range groups {
		for _, id := range renewed[i] {
			owned[g.k.topic+"\x00"+g.k.receipt(id)] = true
		}
	}
	return owned, nil
}

// maintain promotes due delayed jobs and recovers expired leases for the
// topics whose ClaimInterval has passed (or whose last recovery scan was cut
// short), returning up to room recovered deliveries. A topic whose earliest
// delayed job is known to be due (see dueAt) is promoted too, whatever
// ClaimInterval says. Each topic is handled on its own: an error of one
// topic (logged with the topic) neither skips the others nor skips recovery
// of the topic whose promotion failed. The errors are returned joined, with
// what was recovered.
func (b *Broker) maintain(ctx context.Context, ks []keys, room int) ([]*broker.Delivery, error) {
	b.sweepBatches(ctx) // see batch.go
	now := time.Now()
	nowMs := b.o.Now().UnixMilli()
	var due, prom []keys
	b.mu.Lock()
	for _, k := range ks {
		_, resume := b.cursors[k.id]
		if resume || now.Sub(b.lastMaint[k.id]) >= b.o.ClaimInterval {
			b.lastMaint[k.id] = now
			due = append(due, k)
			prom = append(prom, k)
		} else if d, ok := b.due[k.id]; ok && d.at <= nowMs {
			prom = append(prom, k)
		}
	}
	b.mu.Unlock()
	if len(prom) == 0 {
		return nil, nil
	}
	var errs []error
	for _, err := range b.promote(ctx, prom) {
		errs = append(errs, err)
	}
	var out []*broker.Delivery
	for _, k := range due {
		if room-len(out) <= 0 {
			break
		}
		got, err := b.recover(ctx, k, room-len(out))
		out = append(out, got...)
		if err != nil {
			b.log.Error("conveyor/redis: recover expired leases", "topic", k.topic, "err", err)
			errs = append(errs, err)
		}
	}
	return out, errors.Join(errs...)
}

// promote moves due delayed jobs of ks to their streams: one script per
// topic, pipelined, repeated for topics that had more than a batch due. It
// records each topic's next due time (see dueAt) and returns the error of
// each topic that failed (logged with the topic); the other topics are
// promoted regardless.
func (b *Broker) promote(ctx context.Context, ks []keys) map[string]error {
	errs := map[string]error{}
	b.promoting(ks)
	now := strconv.FormatInt(b.o.Now().UnixMilli(), 10)
	for round := 0; round < 10 && len(ks) > 0; round++ {
		calls := make([]scriptCall, len(ks))
		for i, k := range ks {
			calls[i] = scriptCall{promoteScript, []string{k.delayed, k.stream}, []any{now, promoteBatch}}
		}
		cmds, err := b.runScripts(ctx, calls)
		if err != nil {
			err = b.wrap("promote delayed jobs", err)
			b.log.Error("conveyor/redis: promote delayed jobs", "err", err)
			for _, k := range ks {
				errs[k.topic] = err
			}
			return errs
		}
		var more []keys
		for i, c := range cmds {
			res, err := c.Int64Slice()
			if err == nil && len(res) != 2 {
				err = fmt.Errorf("unexpected reply of %d elements", len(res))
			}
			if err != nil {
				err = b.wrap("promote delayed jobs of "+ks[i].topic, err)
				b.log.Error("conveyor/redis: promote delayed jobs", "topic", ks[i].topic, "err", err)
				errs[ks[i].topic] = err
				continue
			}
			b.promoted(ks[i].id, res[1])
			if res[0] >= promoteBatch {
				more = append(more, ks[i])
			}
		}
		ks = more
	}
	return errs
}

// recover claims up to room entries of k idle longer than the lease.
func (b *Broker) recover(ctx context.Context, k keys, room int) ([]*broker.Delivery, error) {
	b.mu.Lock()
	cursor := b.cursors[k.id]
	b.mu.Unlock()
	if cursor == "" {
		cursor = "0-0"
	}
	var out []*broker.Delivery
	done := false
	for round := 0; round < recoverRounds && room-len(out) > 0; round++ {
		res, err := recoverScript.Run(ctx, b.rdb, []string{k.stream, k.paused},
			b.o.Group, b.o.Consumer, b.o.Lease.Milliseconds(), cursor, room-len(out)).Slice()
		if err != nil {
			if isNoGroup(err) {
				b.forgetGroups(k.stream)
				return out, b.ensureGroups(ctx, k.stream)
			}
			return out, b.wrap("recover expired leases", err)
		}
		next, entries, counts, deleted, err := parseRecover(res)
		if err != nil {
			return out, b.wrap("recover expired leases", err)
		}
		if len(deleted) > 0 {
			b.lost.Add(int64(len(deleted)))
			b.log.Error("conveyor/redis: pending entries were deleted from the stream before being settled: jobs lost",
				"topic", k.topic, "stream", k.stream, "count", len(deleted), "entries", deleted)
		}
		if len(entries) > 0 {
			b.unbuffer(k, entries)
		}
		for i, e := range entries {
			if d := b.redelivery(ctx, k, e, counts[i]); d != nil {
				out = append(out, d)
			}
		}
		cursor = next
		if cursor == "0-0" {
			done = true
			break
		}
	}
	b.mu.Lock()
	if done {
		delete(b.cursors, k.id)
	} else {
		b.cursors[k.id] = cursor
	}
	b.mu.Unlock()
	return out, nil
}

// redelivery turns a claimed entry into a delivery, or dead-letters it when
// it is malformed or was already delivered MaxDeliveries times with no
// outcome (returning nil). count is the entry's delivery count, this
// delivery included: count-1 deliveries ended without an outcome.
func (b *Broker) redelivery(ctx context.Context, k keys, e goredis.XMessage, count int64) *broker.Delivery {
	d := b.delivery(ctx, k, entryOf(e.ID, e.Values), k.receipt(e.ID))
	if d == nil {
		return nil
	}
	attempt := d.Job.Attempt // as recorded in the entry
	unsettled := max(count, 1) - 1
	d.Job.Attempt = broker.AddAttempts(attempt, unsettled)
	if unsettled >= int64(b.o.MaxDeliveries) {
		f := job.Failure{
			Error:  fmt.Sprintf("conveyor: delivered %d times with no outcome: its worker crashed or lost the lease each time", unsettled),
			Reason: job.ReasonMaxDeliveries,
			Origin: k.topic,
			At:     b.o.Now(),
		}
		// The dead letter records the last attempt that was delivered.
		last := broker.AddAttempts(attempt, unsettled-1)
		if err := b.deadLetterFields(ctx, d, encodeFields(&d.Job, last, &f)); err != nil {
			b.log.Error("conveyor/redis: dead-letter poison entry", "topic", k.topic, "entry", e.ID, "err", err)
		} else {
			b.log.Warn("conveyor/redis: poison entry dead-lettered", "topic", k.topic, "job_id", d.Job.ID, "attempt", last, "deliveries", unsettled)
		}
		return nil
	}
	return d
}

// parseRecover reads recoverScript's reply.
func parseRecover(res []any) (next string, entries []goredis.XMessage, counts []int64, deleted []string, err error) {
	if len(res) != 4 {
		return "", nil, nil, nil, fmt.Errorf("unexpected reply of %d elements", len(res))
	}
	next, _ = res[0].(string)
	raw, _ := res[1].([]any)
	cs, _ := res[2].([]any)
	if len(cs) != len(raw) {
		return "", nil, nil, nil, errors.New("unexpected reply: counts do not match entries")
	}
	for i, r := range raw {
		pair, ok := r.([]any)
		if !ok || len(pair) != 2 {
			continue
		}
		id, _ := pair[0].(string)
		fv, _ := pair[1].([]any)
		values := make(map[string]any, len(fv)/2)
		for j := 0; j+1 < len(fv); j += 2 {
			f, _ := fv[j].(string)
			values[f] = fv[j+1]
		}
		c, _ := cs[i].(int64)
		entries = append(entries, goredis.XMessage{ID: id, Values: values})
		counts = append(counts, c)
	}
	for _, d := range res[3].([]any) {
		if s, ok := d.(string); ok {
			deleted = append(deleted, s)
		}
	}
	return next, entries, counts, deleted, nil
}

// read reads new entries of ks (XREADGROUP >), up to count, waiting up to
// Block when block is set and none is waiting. Every entry read is leased
// to this consumer, so read never reads more than count while entries are
// waiting: on a single Redis, one script (readScript) goes round all the
// streams, sharing count among those that have entries as o says, and
// skipping paused topics; on Cluster, where a script cannot span slots,
// see readCluster. Only a wait for new entries can return more than count
// (on a single Redis, when entries arrive on several streams at the same
// moment): the caller buffers them. Within a topic, entries come in stream
// order. A blocking read of one stream whose last read found nothing
// waiting blocks at once (see waitAtOnce).
//
// On an error reading one stream, the entries read from the others are
// returned together with the error.
func (b *Broker) read(ctx context.Context, ks []keys, count int, block bool, o order) ([]*broker.Delivery, error) {
	if count <= 0 || len(ks) == 0 {
		return nil, nil
	}
	var streams []streamEntries
	var err error
	if b.cluster {
		streams, err = b.readCluster(ctx, ks, count, block, o)
	} else if wait, ok := b.waitAtOnce(ks, block); ok {
		// The last read of this topic found nothing waiting: block at
		// once, which returns at once what arrived since, rather than
		// first read without blocking, a round trip that would come back
		// empty again.
		streams, err = b.waitOne(ctx, ks[0], count, wait)
	} else {
		var paused map[int]bool
		streams, paused, err = b.readShared(ctx, ks, count, o)
		if err == nil && len(streams) == 0 && block {
			// Nothing is waiting: wait on every stream not paused at
			// once, each with an equal part of count (at least one).
			streams, err = b.waitUnpaused(ctx, ks, paused, count)
			if len(ks) == 1 && len(paused) == 0 {
				b.noteWaited(ks[0], err == nil && waitedFor(streams, count))
			}
		}
	}
	byStream := make(map[string]keys, len(ks))
	for _, k := range ks {
		byStream[k.stream] = k
	}
	var out []*broker.Delivery
	for _, s := range streams {
		k := byStream[s.stream]
		for _, e := range s.entries {
			e, receipt := k.own(e)
			if d := b.delivery(ctx, k, e, receipt); d != nil {
				out = append(out, d)
			}
		}
	}
	return out, err
}

// readShared reads up to count new entries from the streams of ks not
// paused, in one round trip (readScript): in turn (the zero order), it
// starts at the stream after the last one that gave entries in the
// previous call, so that every topic is served in turn. It returns the
// indexes in ks of the paused topics too. Streams whose consumer group is
// missing have it recreated, and are read at the next call.
func (b *Broker) readShared(ctx context.Context, ks []keys, count int, o order) ([]streamEntries, map[int]bool, error) {
	if len(ks) == 1 {
		streams, paused, err := b.readOne(ctx, ks[0], count)
		if paused {
			return streams, map[int]bool{0: true}, err
		}
		return streams, nil, err
	}
	if !o.strict && o.strides == nil {
		if streams, paused, ok, err := b.readMany(ctx, ks, count); ok {
			return streams, paused, err
		}
	}
	names := make([]string, len(ks))
	keys := make([]string, 2*len(ks))
	for i, k := range ks {
		names[i] = k.stream
		keys[i], keys[len(ks)+i] = k.stream, k.paused
	}
	args := []any{b.o.Group, b.o.Consumer, count}
	switch {
	case o.strict:
		args = append(args, "strict")
	case o.strides != nil:
		args = append(args, "weighted")
		for _, s := range o.stridesOf(ks) {
			args = append(args, s)
		}
		for _, p := range b.loadPasses(ks) {
			args = append(args, p)
		}
	default:
		args = append(args, "turn", b.readTurn.Load()%uint64(len(ks)))
	}
	res, err := readScript.Run(ctx, b.rdb, keys, args...).Slice()
	if err != nil {
		return nil, nil, b.wrap("read", err)
	}
	r, err := parseRead(res, names)
	if err != nil {
		return nil, nil, b.wrap("read", err)
	}
	b.notePausedAll(ks, r.paused)
	switch {
	case o.strict:
	case o.strides != nil:
		b.storePasses(ks, r.passes)
	default:
		b.readTurn.Store(r.next)
	}
	return r.streams, r.paused, b.readFailed(ctx, ks, r.failed)
}

// readOne reads up to count new entries of one stream and reports whether
// its topic is paused, in one round trip: a plain XREADGROUP, pipelined
// after a GET of the pause key, costs less than readScript (whose reply
// Redis converts twice). Since the read does not depend on the GET, it is
// sent only while the topic was seen not paused less than Block ago (by
// the previous Fetch, under load); otherwise a GET alone comes first. So
// a read returns entries of a paused topic only when the pause landed
// within the last Block, as with a blocking read already waiting.
func (b *Broker) readOne(ctx context.Context, k keys, count int) ([]streamEntries, bool, error) {
	b.mu.Lock()
	seen, ok := b.pauseSeen[k.id]
	b.mu.Unlock()
	if !ok || seen.paused || time.Since(seen.at) > b.o.Block {
		err := b.rdb.Get(ctx, k.paused).Err()
		if err != nil && !errors.Is(err, goredis.Nil) {
			return nil, false, b.wrap("paused "+k.topic, err)
		}
		paused := err == nil
		b.notePaused(k.id, paused)
		if paused {
			return nil, true, nil
		}
	}
	pipe := b.rdb.Pipeline()
	get := pipe.Get(ctx, k.paused)
	read := b.newReadCmd(ctx, []string{k.stream}, count)
	_ = pipe.Process(ctx, read)
	_, _ = pipe.Exec(ctx)
	streams, err := readResult(read)
	paused := get.Err() == nil
	if gerr := get.Err(); gerr != nil && !errors.Is(gerr, goredis.Nil) {
		// Not known: what the read leased is returned with the error.
		failed := b.wrap("paused "+k.topic, gerr)
		if err != nil {
			failed = errors.Join(failed, b.wrap("read "+k.topic, err))
		}
		return streams, false, failed
	}
	b.notePaused(k.id, paused)
	switch {
	case err == nil:
		return streams, paused, nil
	case isNoGroup(err):
		return nil, paused, b.readFailed(ctx, []keys{k}, map[int]string{0: err.Error()})
	default:
		return nil, paused, b.wrap("read "+k.topic, err)
	}
}

// pauseSeen is what a one-topic read last saw of its topic's pause key.
type pauseSeen struct {
	paused bool
	at     time.Time
	// waited: the topic's last read found nothing waiting, or its last
	// wait one entry (see waitAtOnce).
	waited bool
}

// waitAtOnce reports whether a blocking read of the one stream of ks
// should block at once, without the non-blocking read first, and for how
// long (waitOne): when the last read found nothing waiting (or a wait
// returned one entry, less than its count) and saw the topic's pause key
// unset, and the client's read timeout leaves room for a pipelined wait
// (b.pipeWait). A blocking read is typed (see readGroup), which costs more
// per entry than the raw non-blocking read: once one returns more, the
// next read is the non-blocking one again.
func (b *Broker) waitAtOnce(ks []keys, block bool) (time.Duration, bool) {
	if !block || len(ks) != 1 || b.pipeWait < time.Millisecond {
		return 0, false
	}
	b.mu.Lock()
	seen, ok := b.pauseSeen[ks[0].id]
	b.mu.Unlock()
	return b.pipeWait, ok && seen.waited && !seen.paused
}

// waitOne is the blocking read of waitAtOnce: one XREADGROUP BLOCK wait
// of k's stream, with a GET of its pause key pipelined after it, which
// Redis runs when the read returns. Like the GET pipelined with a
// non-blocking read, it costs no round trip, and a pause that landed
// during the wait lets the read return its one batch and stops the next
// read.
func (b *Broker) waitOne(ctx context.Context, k keys, count int, wait time.Duration) ([]streamEntries, error) {
	_, stop := b.promoteWhenDue(ctx, []keys{k}, time.Now().Add(wait), false)
	defer stop()
	pipe := b.rdb.Pipeline()
	read := pipe.XReadGroup(ctx, &goredis.XReadGroupArgs{
		Group: b.o.Group, Consumer: b.o.Consumer, Streams: []string{k.stream, ">"},
		Count: int64(count), Block: wait,
	})
	get := pipe.Get(ctx, k.paused)
	_, _ = pipe.Exec(ctx)
	streams, err := read.Result()
	var out []streamEntries
	switch {
	case err == nil:
		out = entriesOf(streams)
	case errors.Is(err, goredis.Nil):
		err = nil // the wait ended with nothing
	case isNoGroup(err):
		err = b.readFailed(ctx, []keys{k}, map[int]string{0: err.Error()})
	default:
		err = b.wrap("read "+k.topic, err)
	}
	switch gerr := get.Err(); {
	case gerr == nil || errors.Is(gerr, goredis.Nil):
		b.notePaused(k.id, gerr == nil)
		b.noteWaited(k, gerr != nil && err == nil && waitedFor(out, count))
	default:
		// Not known: the next read asks again.
		b.noteWaited(k, false)
		if err == nil {
			err = b.wrap("paused "+k.topic, gerr)
		}
	}
	return out, err
}

// noteWaited records whether the last read of k found nothing waiting, or
// waited for one entry, for waitAtOnce.
func (b *Broker) noteWaited(k keys, waited bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if seen, ok := b.pauseSeen[k.id]; ok {
		seen.waited = waited
		b.pauseSeen[k.id] = seen
	}
}

// waitedFor reports whether a wait that returned ss, COUNT count, returned
// at most one entry and less than count: jobs arrive one at a time.
func waitedFor(ss []streamEntries, count int) bool {
	n := entryCount(ss)
	return n <= 1 && n < count
}

// entryCount returns how many entries ss holds.
func entryCount(ss []streamEntries) int {
	n := 0
	for _, s := range ss {
		n += len(s.entries)
	}
	return n
}

// notePaused records that topic was seen paused or not just now.
func (b *Broker) notePaused(topic string, paused bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pauseSeen == nil || len(b.pauseSeen) > maxKeyCache {
		b.pauseSeen = map[string]pauseSeen{}
	}
	b.pauseSeen[topic] = pauseSeen{paused: paused, at: time.Now()}
}

// readFailed handles the streams whose read failed (by index into ks):
// missing consumer groups are recreated; it returns the first other error.
func (b *Broker) readFailed(ctx context.Context, ks []keys, failed map[int]string) error {
	var missing []string
	var first error
	for i, msg := range failed {
		if strings.HasPrefix(msg, "NOGROUP") {
			missing = append(missing, ks[i].stream)
		} else if first == nil {
			first = b.wrap("read "+ks[i].topic, errors.New(msg))
		}
	}
	if len(missing) > 0 {
		b.forgetGroups(missing...)
		if err := b.ensureGroups(ctx, missing...); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// waitUnpaused waits like waitGroup on the streams of ks not in paused
// (indexes into ks), count shared among them; when every one is paused it
// waits Block (or until ctx ends) and returns nothing.
func (b *Broker) waitUnpaused(ctx context.Context, ks []keys, paused map[int]bool, count int) ([]streamEntries, error) {
	wait := ks
	if len(paused) > 0 {
		wait = make([]keys, 0, len(ks))
		for i, k := range ks {
			if !paused[i] {
				wait = append(wait, k)
			}
		}
	}
	if len(wait) == 0 {
		t := time.NewTimer(b.o.Block)
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		return nil, nil
	}
	return b.waitGroup(ctx, wait, max(1, count/len(wait)))
}

// readReply is readScript's reply.
type readReply struct {
	streams []streamEntries // entries per stream, in read order
	failed  map[int]string  // index into names -> error text
	next    uint64          // turn: the index to start from next time
	paused  map[int]bool    // indexes into names of paused streams
	passes  []int64         // weighted: the new passes, by index
}

// parseRead reads readScript's reply for the streams names.
func parseRead(res []any, names []string) (readReply, error) {
	var r readReply
	if len(res) != 5 {
		return r, fmt.Errorf("unexpected reply of %d elements", len(res))
	}
	reads, _ := res[0].([]any)
	fails, _ := res[1].([]any)
	next, _ := res[2].(int64)
	paused, _ := res[3].([]any)
	passes, _ := res[4].([]any)
	for _, x := range reads {
		pair, ok := x.([]any)
		if !ok || len(pair) != 2 {
			return r, errors.New("unexpected reply: bad read")
		}
		i, _ := pair[0].(int64)
		if i < 1 || int(i) > len(names) {
			return r, fmt.Errorf("unexpected reply: stream index %d", i)
		}
		raw, _ := pair[1].([]any)
		s := streamEntries{stream: names[i-1], entries: make([]entry, 0, len(raw))}
		for _, e := range raw {
			if en, ok := parseEntry(e); ok {
				s.entries = append(s.entries, en)
			}
		}
		r.streams = append(r.streams, s)
	}
	r.failed = map[int]string{}
	for _, f := range fails {
		pair, ok := f.([]any)
		if !ok || len(pair) != 2 {
			continue
		}
		i, _ := pair[0].(int64)
		msg, _ := pair[1].(string)
		if i >= 1 && int(i) <= len(names) {
			r.failed[int(i-1)] = msg
		}
	}
	r.next = uint64(max(next, 0))
	r.paused = map[int]bool{}
	for _, x := range paused {
		if i, ok := x.(int64); ok && i >= 1 && int(i) <= len(names) {
			r.paused[int(i-1)] = true
		}
	}
	if len(passes) > 0 {
		if len(passes) != len(names) {
			return r, fmt.Errorf("unexpected reply: %d passes for %d streams", len(passes), len(names))
		}
		r.passes = make([]int64, len(names))
		for i, x := range passes {
			r.passes[i], _ = x.(int64)
		}
	}
	return r, nil
}

// parseEntry reads one stream entry of a script reply: {id, {field, value,
// ...}}.
func parseEntry(e any) (entry, bool) {
	pair, ok := e.([]any)
	if !ok || len(pair) != 2 {
		return entry{}, false
	}
	id, _ := pair[0].(string)
	fv, _ := pair[1].([]any)
	fields := make([]string, len(fv))
	for j, v := range fv {
		fields[j] = valueString(v)
	}
	return entry{id: id, fields: fields}, true
}

// waitGroup waits up to Block for new entries on every stream of ks with
// one blocking XREADGROUP, COUNT count per stream, while delayed jobs of ks
// that come due meanwhile are promoted (promoteWhenDue), which ends the
// wait at once.
func (b *Broker) waitGroup(ctx context.Context, ks []keys, count int) ([]streamEntries, error) {
	_, stop := b.promoteWhenDue(ctx, ks, time.Now().Add(b.o.Block), false)
	defer stop()
	return b.readGroup(ctx, ks, count, b.o.Block)
}

// readGroup runs one XREADGROUP over all streams of ks with COUNT count
// (per stream) and BLOCK block (-1: none), recreating missing groups once.
func (b *Broker) readGroup(ctx context.Context, ks []keys, count int, block time.Duration) ([]streamEntries, error) {
	args := &goredis.XReadGroupArgs{
		Group:    b.o.Group,
		Consumer: b.o.Consumer,
		Streams:  make([]string, 0, 2*len(ks)),
		Count:    int64(count),
		Block:    block,
	}
	names := make([]string, len(ks))
	for i, k := range ks {
		names[i] = k.stream
	}
	args.Streams = append(args.Streams, names...)
	for range ks {
		args.Streams = append(args.Streams, ">")
	}
	for attempt := 0; ; attempt++ {
		streams, err := b.rdb.XReadGroup(ctx, args).Result()
		switch {
		case err == nil:
			return entriesOf(streams), nil
		case errors.Is(err, goredis.Nil):
			return nil, nil
		case isNoGroup(err) && attempt == 0:
			b.forgetGroups(names...)
			if err := b.ensureGroups(ctx, names...); err != nil {
				return nil, err
			}
		default:
			return nil, b.wrap("read", err)
		}
	}
}

// readCluster reads up to count new entries of ks on Redis Cluster, where
// each topic's stream sits in its own slot, so no single command or script
// can read them all. When there are more streams than count, or the order
// is strict, it asks every stream how many unread entries it has
// (peekScript, which leases nothing, up to count) in one pipeline; then it
// reads from those that have (or from all) with a second pipeline, count
// shared out among them as o says (each stream read with its own
// readScript), the topics served first rotating from one call to the next
// in turn. Paused topics have nothing to read. go-redis sends a pipeline to
// every master at once, so each step costs one round trip. When none has
// entries and block is set, it asks again every Block/10 (10 ms to 100
// ms), or as soon as a delayed job was promoted, until Block has passed.
func (b *Broker) readCluster(ctx context.Context, ks []keys, count int, block bool, o order) ([]streamEntries, error) {
	until := time.Now().Add(b.o.Block)
	var woke <-chan struct{}
	if block {
		var stop func()
		woke, stop = b.promoteWhenDue(ctx, ks, until, true)
		defer stop()
	}
	every := min(max(b.o.Block/10, 10*time.Millisecond), 100*time.Millisecond)
	for {
		// With count >= len(ks) every stream gets a share: no need to ask
		// which have entries first.
		has, avail, perr := ks, []int(nil), error(nil)
		peeked := count < len(ks) || o.strict
		if peeked {
			has, avail, perr = b.peek(ctx, ks, count, o)
		}
		if len(has) > 0 {
			read := b.readShares
			if !peeked && o.strides == nil {
				read = b.readWindow // see clusterwindow.go
			}
			streams, err := read(ctx, has, avail, count, o)
			if len(streams) > 0 || err != nil || perr != nil {
				return streams, errors.Join(perr, err)
			}
		} else if perr != nil {
			return nil, perr
		}
		wait := min(every, time.Until(until))
		if !block || wait <= 0 || b.closed.Load() {
			return nil, nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, nil
		case <-woke:
			t.Stop()
		case <-t.C:
		}
	}
}

// readShares shares count among ks as o says and reads each stream's
// share (readEach). avail, when known, is how many unread entries each
// stream of ks had (strict order shares by it).
func (b *Broker) readShares(ctx context.Context, ks []keys, avail []int, count int, o order) ([]streamEntries, error) {
	switch {
	case o.strict:
		counts := make([]int, len(ks))
		left := count
		for i := range ks {
			counts[i] = min(left, avail[i])
			left -= counts[i]
		}
		if left > 0 && len(ks) > 0 {
			counts[0] += left // arrived since the peek: the first takes them
		}
		streams, _, err := b.readEach(ctx, ks, counts)
		return streams, err
	case o.strides != nil:
		strides := o.stridesOf(ks)
		pass := b.loadPasses(ks)
		live := make([]bool, len(ks))
		for i := range live {
			live[i] = true
		}
		counts := share.Plan(pass, strides, live, count)
		streams, got, err := b.readEach(ctx, ks, counts)
		for i := range ks {
			if got[i] < counts[i] {
				pass[i] -= int64(counts[i]-got[i]) * strides[i]
				live[i] = false
			}
		}
		share.Idle(pass, live)
		b.storePasses(ks, pass)
		return streams, err
	default:
		streams, _, err := b.readEach(ctx, ks, b.shares(len(ks), count))
		return streams, err
	}
}

// peek returns the topics of ks whose stream has unread entries and is not
// paused, with how many (up to count), in one pipeline of peekScript, and
// the first error of a stream. Streams without the consumer group have it
// created.
func (b *Broker) peek(ctx context.Context, ks []keys, count int, o order) ([]keys, []int, error) {
	calls := make([]scriptCall, len(ks))
	for i, k := range ks {
		calls[i] = scriptCall{peekScript, []string{k.stream, k.paused}, []any{b.o.Group, count}}
	}
	cmds, err := b.runScripts(ctx, calls)
	if err != nil {
		return nil, nil, b.wrap("read", err)
	}
	var has []keys
	var avail []int
	var missing []string
	var first error
	for i, c := range cmds {
		n, err := c.Int64()
		switch {
		case err != nil:
			if first == nil {
				first = b.wrap("read "+ks[i].topic, err)
			}
		case n < 0:
			missing = append(missing, ks[i].stream)
		case n > 0:
			has = append(has, ks[i])
			avail = append(avail, int(n))
		}
	}
	if len(missing) > 0 {
		b.forgetGroups(missing...)
		if err := b.ensureGroups(ctx, missing...); err != nil && first == nil {
			first = err
		}
	}
	return has, avail, first
}

// shares splits count among n streams: each gets count/n, and count%n of
// them one more, starting at a position that moves on by count from one
// call to the next, so that with count < n successive calls serve
// successive streams. The shares sum to count.
func (b *Broker) shares(n, count int) []int {
	start := int((b.readTurn.Add(uint64(count)) - uint64(count)) % uint64(n))
	out := make([]int, n)
	for i := range out {
		out[i] = count / n
		if (i-start+n)%n < count%n {
			out[i]++
		}
	}
	return out
}

// readEach reads each stream of ks with its own readScript of COUNT
// counts[i] (streams with a zero share are skipped), in one pipeline, and
// returns the entries with how many each stream gave. A paused stream
// gives none. An error of one stream does not discard what the others
// returned: they are returned with the first error.
func (b *Broker) readEach(ctx context.Context, ks []keys, counts []int) ([]streamEntries, []int, error) {
	if streams, got, ok, err := b.readEachPlain(ctx, ks, counts); ok {
		return streams, got, err
	}
	var calls []scriptCall
	var idx []int
	for i, k := range ks {
		if counts[i] > 0 {
			calls = append(calls, scriptCall{readScript, []string{k.stream, k.paused}, []any{b.o.Group, b.o.Consumer, counts[i], "strict"}})
			idx = append(idx, i)
		}
	}
	got := make([]int, len(ks))
	if len(calls) == 0 {
		return nil, got, nil
	}
	cmds, err := b.runScripts(ctx, calls)
	if err != nil {
		return nil, got, b.wrap("read", err)
	}
	var out []streamEntries
	failed := map[int]string{}
	var first error
	for j, c := range cmds {
		i := idx[j]
		res, err := c.Slice()
		var r readReply
		if err == nil {
			r, err = parseRead(res, []string{ks[i].stream})
		}
		if err != nil {
			if first == nil {
				first = b.wrap("read "+ks[i].topic, err)
			}
			continue
		}
		b.notePaused(ks[i].id, r.paused[0])
		for _, s := range r.streams {
			got[i] += len(s.entries)
		}
		out = append(out, r.streams...)
		if msg, ok := r.failed[0]; ok {
			failed[i] = msg
		}
	}
	if err := b.readFailed(ctx, ks, failed); err != nil && first == nil {
		first = err
	}
	return out, got, first
}

// delivery decodes entry e of k's stream, whose receipt is receipt, into a
// delivery, or dead-letters it when it is malformed (returning nil).
func (b *Broker) delivery(ctx context.Context, k keys, e entry, receipt string) *broker.Delivery {
	dec := decodeFields(k.topic, e, receipt)
	if dec.problem != "" {
		b.deadLetterMalformed(ctx, k, e, dec)
		return nil
	}
	b.warn(k, e.id, dec)
	return &broker.Delivery{Job: dec.job, Receipt: receipt}
}

// warn logs the corrections decodeEntry made.
func (b *Broker) warn(k keys, entry string, dec decoded) {
	for _, w := range dec.warnings {
		b.log.Warn("conveyor/redis: malformed field in stream entry", "topic", k.topic, "entry", entry, "problem", w)
	}
}

// deadLetterMalformed moves an entry that is not a valid job to the topic's
// dead-letter stream with its original fields and reason ReasonMalformed.
func (b *Broker) deadLetterMalformed(ctx context.Context, k keys, e entry, dec decoded) {
	values := make(map[string]string, len(e.fields)/2)
	for i := 0; i+1 < len(e.fields); i += 2 {
		values[e.fields[i]] = e.fields[i+1]
	}
	fields := make([]string, 0, 2*len(values)+14)
	hasID, hasEnq := false, false
	for _, f := range slices.Sorted(maps.Keys(values)) {
		switch f {
		case fieldError, fieldReason, fieldHandler, fieldOrigin, fieldFailedAt, fieldStack:
			continue
		case fieldID:
			hasID = true
		case fieldEnqueuedAt:
			hasEnq = true
		}
		fields = append(fields, f, values[f])
	}
	// The dead letter is a new entry: it carries the job's ID and enqueue
	// time explicitly when the original entry implied them.
	if !hasID {
		fields = append(fields, fieldID, dec.job.ID)
	}
	if !hasEnq {
		if t, ok := entryTime(e.id); ok {
			fields = append(fields, fieldEnqueuedAt, strconv.FormatInt(t.UnixMilli(), 10))
		}
	}
	fields = append(fields, failureFields(job.Failure{
		Error:  dec.problem,
		Reason: ReasonMalformed,
		Origin: k.topic,
		At:     b.o.Now(),
	})...)
	d := &broker.Delivery{Job: job.Job{ID: dec.job.ID, Topic: k.topic, UniqueKey: dec.job.UniqueKey}, Receipt: k.receipt(e.id)}
	if err := b.deadLetterFields(ctx, d, fields); err != nil {
		b.log.Error("conveyor/redis: dead-letter malformed entry (it stays pending and is retried at recovery)",
			"topic", k.topic, "entry", e.id, "err", err)
		return
	}
	b.log.Error("conveyor/redis: malformed stream entry dead-lettered", "topic", k.topic, "entry", e.id, "problem", dec.problem)
}
