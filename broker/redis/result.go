package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/job"
)

// DefaultResultRetention is the default of Options.ResultRetention.
const DefaultResultRetention = 24 * time.Hour

// MaxResultRetention bounds Options.ResultRetention.
const MaxResultRetention = 366 * 24 * time.Hour

// MinProgressTTL is the least time the progress of a running job lives in
// Redis after its last write (see [Broker.RecordProgress]).
const MinProgressTTL = 10 * time.Minute

var (
	_ broker.JobReader        = (*Broker)(nil)
	_ broker.ProgressRecorder = (*Broker)(nil)
	_ broker.ProgressReader   = (*Broker)(nil)
)

// Results and progress live in the hash slot of the stream their job was
// delivered from, under its prefix (the stream key without ":stream"):
//
//	<ns>:{T}:result:<job ID>  hash result, state, finished_at, attempt,
//	                          enqueued_at (unix ms); expires after
//	                          Options.ResultRetention
//	<ns>:{T}:progress         hash: stream entry ID -> the progress of its
//	                          delivery, JSON {"fraction","message","at"}
//	                          (at in unix ms)
//	<ns>:{T}:progress:at      sorted set: stream entry ID scored by the time
//	                          of its last progress write (unix ms)
//
// Every progress write prunes the entries of the topic last written more
// than the progress TTL (max(2 × Lease, MinProgressTTL)) ago, at most 100
// per write, and sets both keys to expire after that TTL, so a topic's
// progress costs one hash field per job that reported progress recently.
// A topic's progress is read with one HMGET, whatever the number of jobs.
//
// The prefix is taken from the stream key, never rebuilt from the topic's
// name, so that a key stays in the slot of the stream it belongs to.

// streamPrefix returns the prefix of the keys that live beside stream.
func streamPrefix(stream string) string {
	return strings.TrimSuffix(stream, ":stream")
}

// resultKey returns the key of the result of job id delivered from stream.
func resultKey(stream, id string) string {
	return streamPrefix(stream) + ":result:" + id
}

// progressKeys returns the progress hash and its sorted set of write
// times of the deliveries of stream.
func progressKeys(stream string) (hash, at string) {
	p := streamPrefix(stream) + ":progress"
	return p, p + ":at"
}

// resultDefaults fills in and checks ResultRetention.
func (o *Options) resultDefaults() error {
	switch {
	case o.ResultRetention == 0:
		o.ResultRetention = DefaultResultRetention
	case o.ResultRetention < time.Millisecond || o.ResultRetention > MaxResultRetention:
		return fmt.Errorf("conveyor/redis: result retention %v must be between 1ms and %v", o.ResultRetention, MaxResultRetention)
	}
	return nil
}

// progressTTL returns how long progress lives after its last write.
func (b *Broker) progressTTL() time.Duration {
	return max(2*b.o.Lease, MinProgressTTL)
}

// ackResultScript acks an entry as a plain ack does (XACK + XDEL) and, when
// the entry is pending (so that the XACK acknowledges it), stores the job's
// result in a hash that expires after the retention; for a unique job it
// also releases or keeps the job's claim, as ackUniqueScript does. The
// result is written before the XACK: a write Redis refuses (an ACL without
// HSET, maxmemory) fails the script before anything changed, and the entry
// stays pending, to be redelivered. An entry not pending (settled before,
// elsewhere) stores nothing: the job's outcome was decided by another
// settle.
//
// KEYS[1] stream
// KEYS[2] the result hash (<prefix>:result:<job ID>)
// KEYS[3] the claim, for a unique job (absent otherwise)
// ARGV[1] group
// ARGV[2] entry ID
// ARGV[3] the result
// ARGV[4] finished at (unix ms)
// ARGV[5] the attempt that succeeded
// ARGV[6] enqueued at (unix ms; 0 when unknown)
// ARGV[7] retention (ms)
// ARGV[8] job ID (with KEYS[3])
// ARGV[9] keep the claim until (unix ms); "0": delete it now (with KEYS[3])
//
// Returns the number of entries acknowledged (0 or 1).
var ackResultScript = newScript("ack-result", `
local p = redis.pcall('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if type(p) == 'table' and not p.err and #p > 0 then
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[2], 'result', ARGV[3], 'state', 'succeeded', 'finished_at', ARGV[4], 'attempt', ARGV[5], 'enqueued_at', ARGV[6])
  redis.call('PEXPIRE', KEYS[2], ARGV[7])
end
local n = redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
if n == 1 and KEYS[3] and redis.call('GET', KEYS[3]) == ARGV[8] then
  if ARGV[9] == '0' then
    redis.call('DEL', KEYS[3])
  else
    redis.call('PEXPIREAT', KEYS[3], ARGV[9])
  end
end
return n
`)

// progressScript records the progress of deliveries of one stream, prunes
// the progress last written longer than the TTL ago (at most 100 entries)
// and sets both keys to expire after the TTL.
//
// KEYS[1] the progress hash (<prefix>:progress)
// KEYS[2] its write times (<prefix>:progress:at)
// ARGV[1] now (unix ms)
// ARGV[2] the TTL (ms)
// ARGV[3..] entry ID, progress (JSON) pairs
//
// Returns the number of stale entries pruned.
var progressScript = newScript("progress", `
local now = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
for i = 3, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  redis.call('ZADD', KEYS[2], now, ARGV[i])
end
local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now - ttl, 'LIMIT', 0, 100)
if #old > 0 then
  redis.call('ZREM', KEYS[2], unpack(old))
  redis.call('HDEL', KEYS[1], unpack(old))
end
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return #old
`)

// ackResultCall returns the call of ackResultScript that acks d, a
// delivery with a result.
func (b *Broker) ackResultCall(d *broker.Delivery) scriptCall {
	k, entry := b.dkeys(d)
	var enq int64
	if !d.Job.EnqueuedAt.IsZero() {
		enq = d.Job.EnqueuedAt.UnixMilli()
	}
	ks := []string{k.stream, resultKey(k.stream, d.Job.ID)}
	args := []any{b.o.Group, entry, d.Result, b.o.Now().UnixMilli(), d.Job.Attempt, enq, b.o.ResultRetention.Milliseconds()}
	if d.Job.UniqueKey != "" {
		keep := int64(0)
		if d.Job.UniqueFor > 0 {
			keep = max(d.Job.EnqueuedAt.Add(d.Job.UniqueFor).UnixMilli(), 1)
		}
		ks = append(ks, k.unique+d.Job.UniqueKey)
		args = append(args, d.Job.ID, keep)
	}
	return scriptCall{ackResultScript, ks, args}
}

// RecordProgress stores the progress of each update's delivery in its
// topic's progress hash (see the key layout above): one script call per
// stream, pipelined in one round trip (one per Cluster node). A delivery's
// progress is pruned once no write renewed it for max(2 × Lease,
// MinProgressTTL); it is not deleted when the job is settled, but
// [Broker.JobState] and [Broker.ProgressOf] report it only while its entry
// is pending. It implements broker.ProgressRecorder.
func (b *Broker) RecordProgress(ctx context.Context, us ...broker.ProgressUpdate) error {
	if err := b.check(ctx); err != nil {
		return err
	}
	now := b.o.Now().UnixMilli()
	byStream := map[string][]any{}
	var order []string
	for _, u := range us {
		if u.Delivery == nil {
			continue
		}
		k, entry := b.dkeys(u.Delivery)
		s := k.stream
		if _, ok := byStream[s]; !ok {
			order = append(order, s)
			byStream[s] = []any{now, b.progressTTL().Milliseconds()}
		}
		v, err := json.Marshal(progressJSON{Fraction: u.Progress.Fraction, Message: u.Progress.Message, At: u.Progress.At.UnixMilli()})
		if err != nil {
			return fmt.Errorf("conveyor/redis: progress: %w", err)
		}
		byStream[s] = append(byStream[s], entry, v)
	}
	if len(order) == 0 {
		return nil
	}
	calls := make([]scriptCall, len(order))
	for i, s := range order {
		hash, at := progressKeys(s)
		calls[i] = scriptCall{progressScript, []string{hash, at}, byStream[s]}
	}
	cmds, err := b.runScripts(ctx, calls)
	if err != nil {
		return b.wrap("progress", err)
	}
	for _, c := range cmds {
		if err := c.Err(); err != nil {
			return b.wrap("progress", err)
		}
	}
	return nil
}

// progressJSON is the form of a delivery's progress in the progress hash.
type progressJSON struct {
	Fraction float64 `json:"fraction"`
	Message  string  `json:"message,omitempty"`
	At       int64   `json:"at"` // unix ms
}

// decodeProgress reads a value of the progress hash; ok is false when v
// is not one.
func decodeProgress(v any) (broker.Progress, bool) {
	s, ok := v.(string)
	if !ok || s == "" {
		return broker.Progress{}, false
	}
	var pj progressJSON
	if err := json.Unmarshal([]byte(s), &pj); err != nil {
		return broker.Progress{}, false
	}
	return broker.Progress{Fraction: min(max(pj.Fraction, 0), 1), Message: pj.Message, At: time.UnixMilli(pj.At)}, true
}

// ProgressOf returns the progress recorded for the deliveries of topic with
// the given receipts, with one HMGET per partition the receipts name (one
// round trip, one per Cluster node). It does not check
// that the entries are still pending: pass the receipts of pending entries
// ([Broker.PendingEntries]). It implements broker.ProgressReader.
func (b *Broker) ProgressOf(ctx context.Context, topic string, receipts []string) (map[string]broker.Progress, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	out := map[string]broker.Progress{}
	if len(receipts) == 0 {
		return out, nil
	}
	type group struct {
		receipts, entries []string
		cmd               *goredis.SliceCmd
	}
	byStream := map[string]*group{}
	var order []string
	for _, r := range receipts {
		k, entry := b.receiptKeys(topic, r)
		g, ok := byStream[k.stream]
		if !ok {
			g = &group{}
			byStream[k.stream] = g
			order = append(order, k.stream)
		}
		g.receipts, g.entries = append(g.receipts, r), append(g.entries, entry)
	}
	pipe := b.rdb.Pipeline()
	for _, s := range order {
		hash, _ := progressKeys(s)
		byStream[s].cmd = pipe.HMGet(ctx, hash, byStream[s].entries...)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, goredis.Nil) {
		return nil, b.wrap("progress", err)
	}
	for _, s := range order {
		g := byStream[s]
		for i, v := range g.cmd.Val() {
			if p, ok := decodeProgress(v); ok && i < len(g.receipts) {
				out[g.receipts[i]] = p
			}
		}
	}
	return out, nil
}

// JobState returns the state of the job of topic with ID id, looking in
// turn at:
//
//   - its result (<ns>:{T}:result:<id>, one HGETALL and PTTL): succeeded;
//   - the stream, found as [Broker.Cancel] finds it (a scan of at most
//     MaxCancelScan entries): running when its entry is pending in the
//     group (with the progress recorded for the entry), else queued;
//   - the delayed set (a scan of at most MaxCancelScan members): delayed;
//   - the dead-letter stream (a scan likewise): dead.
//
// The result comes first, so that polling a finished job costs one round
// trip whatever the length of the stream; a job ID used again by a new job
// while the result of the earlier one is kept reads as succeeded until that
// result expires. A job that moves while it is looked up (a delayed job
// promoted, a job acked) is looked up once more.
//
// It returns an error wrapping broker.ErrNotFound when no such job is held:
// acknowledged without a result (such jobs are not kept), its result
// expired (after Options.ResultRetention), or never published; and an
// error saying the scan was cut when a scan stopped at its bound. It
// implements broker.JobReader.
func (b *Broker) JobState(ctx context.Context, topic, id string) (*broker.JobState, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	if err := ValidateTopic(topic); err != nil {
		return nil, err
	}
	ks, err := b.allKeys(ctx, topic)
	if err != nil {
		return nil, b.wrap("job state", err)
	}
	ks = b.receiptFirst(topic, id, ks)
	cut := false
	for range 2 {
		js, err := b.resultState(ctx, ks, topic, id)
		if err != nil || js != nil {
			return js, b.wrap("job state", err)
		}
		for _, k := range ks {
			js, truncated, err := b.jobState(ctx, k, id)
			if err != nil || js != nil {
				return js, b.wrap("job state", err)
			}
			cut = cut || truncated
		}
	}
	if cut {
		return nil, fmt.Errorf("conveyor/redis: job state: job %q of %q has no result and is not among the first %d entries of its stream, delayed set or dead-letter stream (the lookup by ID is bounded)", id, topic, MaxCancelScan)
	}
	return nil, fmt.Errorf("%w: job %q of %q: not queued, delayed, running or dead-lettered, and no result is kept for it (a job acknowledged without a result is not kept; a result expires %v after the job succeeded)",
		broker.ErrNotFound, id, topic, b.o.ResultRetention)
}

// jobState is one lookup of JobState: nil when the job was not found.
func (b *Broker) jobState(ctx context.Context, k keys, id string) (*broker.JobState, bool, error) {
	js := &broker.JobState{ID: id, Topic: k.topic}
	m, found, cutStream, err := b.findEntry(ctx, k, k.stream, id)
	if err != nil {
		return nil, false, err
	}
	if found {
		return js, false, b.entryState(ctx, k, m, js)
	}

	member, found, cutDelayed, err := b.findDelayed(ctx, k, id, MaxCancelScan)
	if err != nil {
		return nil, false, err
	}
	if found {
		j := decodeMemberJob(k.topic, member)
		js.ID, js.State, js.Attempt = j.ID, broker.StateDelayed, j.Attempt
		js.EnqueuedAt, js.Failure = j.EnqueuedAt, j.Failure
		due, err := b.rdb.ZScore(ctx, k.delayed, member).Result()
		switch {
		case errors.Is(err, goredis.Nil):
			return nil, false, nil // promoted meanwhile: look again
		case err != nil:
			return nil, false, err
		}
		js.Due = time.UnixMilli(int64(due))
		return js, false, nil
	}

	m, found, cutDLQ, err := b.findEntry(ctx, k, k.dlq, id)
	if err != nil {
		return nil, false, err
	}
	if found {
		dec := decodeEntry(job.DeadLetterTopic(k.topic), m.ID, k.receipt(m.ID), m.Values)
		js.ID, js.State, js.Receipt, js.Attempt = dec.job.ID, broker.StateDead, k.receipt(m.ID), dec.attempt
		js.EnqueuedAt, js.Failure = dec.job.EnqueuedAt, dec.job.Failure
		if js.Failure != nil {
			js.FinishedAt = js.Failure.At
		}
		return js, false, nil
	}
	return nil, cutStream || cutDelayed || cutDLQ, nil
}

// resultFields are the fields of a result hash, in the order
// resultState reads them.
var resultFields = []string{"result", "attempt", "finished_at", "enqueued_at"}

// resultState returns the state of job id from its result, if one is kept
// in one of the partitions ks (all looked up in one pipeline), else nil.
func (b *Broker) resultState(ctx context.Context, ks []keys, topic, id string) (*broker.JobState, error) {
	pipe := b.rdb.Pipeline()
	hs := make([]*goredis.SliceCmd, len(ks))
	ttls := make([]*goredis.DurationCmd, len(ks))
	for i, k := range ks {
		key := resultKey(k.stream, id)
		hs[i] = pipe.HMGet(ctx, key, resultFields...)
		ttls[i] = pipe.PTTL(ctx, key)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, goredis.Nil) {
		return nil, err
	}
	for i := range ks {
		v := hs[i].Val()
		if len(v) != len(resultFields) || v[0] == nil {
			continue
		}
		js := &broker.JobState{ID: id, Topic: topic}
		b.fillResult(js, v, ttls[i].Val())
		return js, nil
	}
	return nil, nil
}

// fillResult fills js from the fields of a result hash (resultFields) and
// its time to live.
func (b *Broker) fillResult(js *broker.JobState, v []any, ttl time.Duration) {
	str := func(i int) string { s, _ := v[i].(string); return s }
	now := b.o.Now()
	js.State = broker.StateSucceeded
	js.Result = []byte(str(0))
	js.Attempt, _ = strconv.Atoi(str(1))
	if ms, err := strconv.ParseInt(str(2), 10, 64); err == nil {
		js.FinishedAt = time.UnixMilli(ms)
	}
	if ms, err := strconv.ParseInt(str(3), 10, 64); err == nil && ms > 0 {
		js.EnqueuedAt = time.UnixMilli(ms)
	}
	if ttl > 0 {
		js.ExpiresAt = now.Add(ttl)
	}
}

// entryState fills js from m, the job's entry in k's stream: running when
// the entry is pending in the group, else queued.
func (b *Broker) entryState(ctx context.Context, k keys, m goredis.XMessage, js *broker.JobState) error {
	dec := decodeEntry(k.topic, m.ID, k.receipt(m.ID), m.Values)
	js.ID, js.Receipt, js.Attempt = dec.job.ID, k.receipt(m.ID), dec.attempt
	js.EnqueuedAt, js.Failure = dec.job.EnqueuedAt, dec.job.Failure
	hash, _ := progressKeys(k.stream)
	pipe := b.rdb.Pipeline()
	pend := pipe.XPendingExt(ctx, &goredis.XPendingExtArgs{Stream: k.stream, Group: b.o.Group, Start: m.ID, End: m.ID, Count: 1})
	prog := pipe.HMGet(ctx, hash, m.ID)
	_, err := pipe.Exec(ctx)
	if err != nil && !errors.Is(err, goredis.Nil) && !isNoGroup(pend.Err()) {
		return err
	}
	ps, _ := pend.Result()
	if len(ps) == 0 {
		js.State = broker.StateQueued
		return nil
	}
	js.State = broker.StateRunning
	js.Attempt = broker.AddAttempts(dec.attempt, max(ps[0].RetryCount, 1)-1)
	if vs := prog.Val(); len(vs) == 1 {
		if p, ok := decodeProgress(vs[0]); ok {
			js.Progress = &p
		}
	}
	return nil
}
