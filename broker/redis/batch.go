package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/job"
)

var _ broker.BatchStore = (*Broker)(nil)

// Batches (see broker.BatchStore) live in the batch's own hash slot, apart
// from their members' topics:
//
//	<ns>:{batch:<id>}:meta     HASH  state, counts, callback, parent, retention, finish
//	<ns>:{batch:<id>}:members  HASH  member ID -> "<index>:<topic>" ("" topic: a child batch)
//	<ns>:{batch:<id>}:done     HASH  member ID -> succeeded | dead | cancelled
//	<ns>:{batch:<id>}:results  HASH  member ID -> the result bytes of an acked member
//	<ns>:batches               ZSET  batch IDs whose callback may be due, scored by
//	                                 when the sweeper looks at them next (unix ms)
//
// A member's end is recorded (batchEndScript, batch slot) BEFORE its settle
// (topic slot): a crash in between redelivers the member, whose second record
// is a no-op. The script that records the last member marks the batch
// complete with finish = due; the broker then enqueues the callback (with a
// unique key that makes a second enqueue a no-op), ends the batch in its
// parent and marks finish = done. A crash before "done" is repaired by the
// sweeper, which runs the same idempotent steps from the index.

// batchKeys are the keys of one batch.
type batchKeys struct{ meta, members, done, results string }

func (b *Broker) batchKeys(id string) batchKeys {
	p := b.o.Namespace + ":{batch:" + id + "}:"
	return batchKeys{p + "meta", p + "members", p + "done", p + "results"}
}

func (b *Broker) batchIndex() string { return b.o.Namespace + ":batches" }

// batchSweepInterval is how often a fetching broker looks for batches whose
// callback was due when a crash interrupted its enqueue.
const batchSweepInterval = 5 * time.Second

// batchChunk is how many members one batchAddScript call registers.
const batchChunk = 500

// batchAddScript creates a batch's record (when ARGV[8] is "1" and it does
// not exist) and registers members in it, each once.
//
// KEYS[1] meta HASH
// KEYS[2] members HASH
// KEYS[3] done HASH (created with an empty field, so that it has a TTL)
// KEYS[4] results HASH (likewise)
// ARGV[1] now (unix ms)
// ARGV[2] TTL of an open batch (ms)
// ARGV[3] the callback message (JSON; "" for none)
// ARGV[4] the callback's job ID
// ARGV[5] "1" for RequireSuccess
// ARGV[6] parent batch ID ("" for none)
// ARGV[7] retention after completion (ms)
// ARGV[8] "1": create the record when missing; "0": the batch must exist
// ARGV[9..] member ID, topic pairs
//
// Returns 1 when it created the record, 0 when the batch existed and is
// open, -1 when it is complete or cancelled (nothing registered), -2 when it
// does not exist and ARGV[8] is "0".
var batchAddScript = newScript("batch-add", `
local created = 0
if redis.call('EXISTS', KEYS[1]) == 0 then
  if ARGV[8] ~= '1' then
    return -2
  end
  local cbstate = 'none'
  if ARGV[3] ~= '' then cbstate = 'waiting' end
  redis.call('HSET', KEYS[1], 'state', 'open', 'total', 0, 'succeeded', 0, 'dead', 0, 'cancelled', 0,
    'created', ARGV[1], 'cb', ARGV[3], 'cbid', ARGV[4], 'cbstate', cbstate, 'require', ARGV[5],
    'parent', ARGV[6], 'retention', ARGV[7], 'failed', '', 'finish', '')
  redis.call('HSET', KEYS[3], '', '')
  redis.call('HSET', KEYS[4], '', '')
  for i = 1, 4 do
    redis.call('PEXPIRE', KEYS[i], ARGV[2])
  end
  created = 1
elseif redis.call('HGET', KEYS[1], 'state') ~= 'open' then
  return -1
end
local total = tonumber(redis.call('HGET', KEYS[1], 'total'))
for i = 9, #ARGV, 2 do
  if redis.call('HSETNX', KEYS[2], ARGV[i], total .. ':' .. ARGV[i + 1]) == 1 then
    total = total + 1
  end
end
redis.call('HSET', KEYS[1], 'total', total)
if created == 0 then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl > 0 then
    redis.call('PEXPIRE', KEYS[2], ttl)
  end
end
return created
`)

// batchEndScript records the end of one member, once: the member ID goes
// into the done HASH with its state, the count of that state goes up, the
// result is kept. The record of the last member marks the batch complete
// (finish = due, cbstate due when it has a callback) and starts its
// retention; the last member of a cancelled batch starts its retention.
// Until then every key keeps the TTL of an open batch set when it opened.
//
// KEYS[1] meta HASH
// KEYS[2] members HASH
// KEYS[3] done HASH
// KEYS[4] results HASH
// ARGV[1] member ID
// ARGV[2] state: succeeded | dead | cancelled
// ARGV[3] result
// ARGV[4] "1" when ARGV[3] is a result to keep
// ARGV[5] what failed ("<topic>/<ID>: <error>"), for a member that did not
//
//	succeed
//
// ARGV[6] now (unix ms)
//
// Returns 2 when this record completed the batch (its callback is due), 1
// when it was recorded, 0 when the member had ended before (nothing
// written), -1 when the batch does not exist, -2 when the ID is not a member.
var batchEndScript = newScript("batch-end", `
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then
  if redis.call('EXISTS', KEYS[1]) == 0 then
    return -1
  end
  return -2
end
if redis.call('HSETNX', KEYS[3], ARGV[1], ARGV[2]) == 0 then
  return 0
end
if ARGV[4] == '1' then
  redis.call('HSET', KEYS[4], ARGV[1], ARGV[3])
end
redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
local m = redis.call('HMGET', KEYS[1], 'succeeded', 'dead', 'cancelled', 'total', 'state', 'cbstate', 'retention', 'failed')
if ARGV[2] ~= 'succeeded' and m[8] == '' then
  redis.call('HSET', KEYS[1], 'failed', ARGV[5])
end
if tonumber(m[1]) + tonumber(m[2]) + tonumber(m[3]) < tonumber(m[4]) then
  return 1
end
local ret = 1
if m[5] == 'open' then
  redis.call('HSET', KEYS[1], 'state', 'complete', 'completed', ARGV[6], 'finish', 'due')
  if m[6] == 'waiting' then
    redis.call('HSET', KEYS[1], 'cbstate', 'due')
  end
  ret = 2
else
  redis.call('HSET', KEYS[1], 'completed', ARGV[6])
end
for i = 1, 4 do
  redis.call('PEXPIRE', KEYS[i], m[7])
end
return ret
`)

// batchFinishedScript marks a complete batch's callback enqueued (or
// dead-lettered) and the batch finished.
//
// KEYS[1] meta HASH
// ARGV[1] the callback's state: enqueued | dead-lettered | none
//
// Returns 1 when it marked the batch, 0 when it was finished already or is
// gone.
var batchFinishedScript = newScript("batch-finished", `
if redis.call('HGET', KEYS[1], 'finish') ~= 'due' then
  return 0
end
redis.call('HSET', KEYS[1], 'finish', 'done')
if redis.call('HGET', KEYS[1], 'cbstate') == 'due' then
  redis.call('HSET', KEYS[1], 'cbstate', ARGV[1])
end
return 1
`)

// batchCallbackEndScript records the end of a batch's callback job.
//
// KEYS[1] meta HASH
// ARGV[1] the callback's job ID
// ARGV[2] succeeded | dead
//
// Returns 1 when recorded, 0 when the batch is gone or has another callback.
var batchCallbackEndScript = newScript("batch-callback-end", `
if redis.call('HGET', KEYS[1], 'cbid') ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'cbstate', ARGV[2])
return 1
`)

// batchCancelScript marks an open batch cancelled; its callback, if any,
// is skipped.
//
// KEYS[1] meta HASH
//
// Returns 1 when it cancelled the batch, 0 when the batch is not open, -1
// when it does not exist.
var batchCancelScript = newScript("batch-cancel", `
local s = redis.call('HGET', KEYS[1], 'state')
if not s then
  return -1
end
if s ~= 'open' then
  return 0
end
redis.call('HSET', KEYS[1], 'state', 'cancelled')
if redis.call('HGET', KEYS[1], 'cbstate') == 'waiting' then
  redis.call('HSET', KEYS[1], 'cbstate', 'skipped')
end
return 1
`)

// deadLetterOnceScript adds a dead letter unless its marker exists: the
// dead-lettering of a chain's next link, which a sweeper may repeat.
//
// KEYS[1] dead-letter stream
// KEYS[2] marker (in the stream's slot)
// ARGV[1] marker TTL (ms)
// ARGV[2..] the dead letter's field, value pairs
//
// Returns 1 when it added the dead letter, 0 when the marker existed.
var deadLetterOnceScript = newScript("dead-letter-once", `
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[1]) == false then
  return 0
end
redis.call('XADD', KEYS[1], '*', unpack(ARGV, 2))
return 1
`)

// OpenBatch registers the batch in the sweeper's index, records it and its
// members (batchAddScript, 500 members a call; idempotent per member),
// registers it in its parent, then publishes its members with PublishBatch.
// Called again with the same spec after an error, it publishes the members
// again; each is counted once.
func (b *Broker) OpenBatch(ctx context.Context, spec broker.BatchSpec) error {
	if err := b.check(ctx); err != nil {
		return err
	}
	if err := spec.Check(); err != nil {
		return err
	}
	now := b.o.Now()
	if err := b.rdb.ZAdd(ctx, b.batchIndex(), goredis.Z{Score: float64(now.UnixMilli()), Member: spec.ID}).Err(); err != nil {
		return b.wrap("open batch", err)
	}
	if spec.Parent != "" {
		res, err := b.batchAdd(ctx, spec.Parent, nil, false, []string{broker.ChildMemberID(spec.ID), ""}, now)
		if err != nil {
			return err
		}
		switch res {
		case -1:
			return fmt.Errorf("%w: parent batch %q", broker.ErrBatchClosed, spec.Parent)
		case -2:
			return fmt.Errorf("%w: parent batch %q", broker.ErrNotFound, spec.Parent)
		}
	}
	for i := 0; i < len(spec.Members); i += batchChunk {
		pairs := make([]string, 0, 2*batchChunk)
		for _, m := range spec.Members[i:min(i+batchChunk, len(spec.Members))] {
			pairs = append(pairs, m.ID, m.Topic)
		}
		res, err := b.batchAdd(ctx, spec.ID, &spec, true, pairs, now)
		if err != nil {
			return err
		}
		if res == -1 {
			return nil // complete or cancelled: every member ended already
		}
	}
	if spec.Unpublished {
		return nil
	}
	ms := make([]broker.Message, len(spec.Members))
	for i, m := range spec.Members {
		m.Headers = maps.Clone(m.Headers)
		if m.Headers == nil {
			m.Headers = map[string]string{}
		}
		m.Headers[broker.HeaderBatch] = spec.ID
		ms[i] = m
	}
	_, err := b.PublishBatch(ctx, ms)
	return err
}

// batchAdd runs batchAddScript on batch id with member pairs; spec is
// needed when create is set.
func (b *Broker) batchAdd(ctx context.Context, id string, spec *broker.BatchSpec, create bool, pairs []string, now time.Time) (int64, error) {
	k := b.batchKeys(id)
	var cb, cbid, require, parent, mk string
	retention := broker.DefaultBatchRetention
	if spec != nil {
		if spec.Callback != nil {
			m := *spec.Callback
			if m.ID == "" {
				m.ID = broker.CallbackID(spec.ID)
			}
			cbid = m.ID
			raw, err := json.Marshal(m)
			if err != nil {
				return 0, err
			}
			cb = string(raw)
		}
		if spec.RequireSuccess {
			require = "1"
		}
		parent = spec.Parent
		retention = spec.RetentionOrDefault()
	}
	if create {
		mk = "1"
	}
	args := []any{now.UnixMilli(), broker.DefaultBatchOpenTTL.Milliseconds(), cb, cbid, require, parent, retention.Milliseconds(), mk}
	for _, p := range pairs {
		args = append(args, p)
	}
	res, err := batchAddScript.Run(ctx, b.rdb, []string{k.meta, k.members, k.done, k.results}, args...).Int64()
	return res, b.wrap("open batch", err)
}

// memberEnd is one record of batchEndScript to run.
type memberEnd struct {
	batch, member, state, failed string
	result                       []byte
}

func (b *Broker) memberEndCall(e memberEnd, now int64) scriptCall {
	k := b.batchKeys(e.batch)
	has := "0"
	if e.result != nil {
		has = "1"
	}
	return scriptCall{batchEndScript, []string{k.meta, k.members, k.done, k.results},
		[]any{e.member, e.state, string(e.result), has, e.failed, now}}
}

// jobEnds returns the records that the end of j in state (a
// broker.Member* state) makes: its end as a member, and as a callback.
func jobEnds(j *job.Job, state string, result []byte, why string) (ends []memberEnd, cb *memberEnd) {
	if j.Headers == nil {
		return nil, nil
	}
	if id := j.Headers[broker.HeaderBatchCallback]; id != "" {
		st := broker.CallbackSucceeded
		if state != broker.MemberSucceeded {
			st = broker.CallbackDead
		}
		cb = &memberEnd{batch: id, member: j.ID, state: st}
	}
	if id := j.Headers[broker.HeaderBatch]; id != "" {
		origin := j.Topic + "/" + j.ID
		if o := j.Headers[broker.HeaderChainFailed]; o != "" {
			origin = o
		}
		if why != "" {
			origin += ": " + why
		}
		if state == broker.MemberSucceeded {
			origin = ""
		}
		ends = append(ends, memberEnd{batch: id, member: j.ID, state: state, failed: origin, result: result})
	}
	return ends, cb
}

// recordEnds records the ends of ds (acked, or dead-lettered in state) in
// their batches, before they are settled, in one pipeline. It returns the
// batches these records completed, whose callbacks are due.
func (b *Broker) recordEnds(ctx context.Context, ds []*broker.Delivery, state string, why string) ([]string, error) {
	var calls []scriptCall
	var batches []string
	now := b.o.Now().UnixMilli()
	for _, d := range ds {
		if d == nil || len(d.Job.Headers) == 0 {
			continue
		}
		var result []byte
		if state == broker.MemberSucceeded {
			result = d.Result
		}
		ends, cb := jobEnds(&d.Job, state, result, why)
		for _, e := range ends {
			calls = append(calls, b.memberEndCall(e, now))
			batches = append(batches, e.batch)
		}
		if cb != nil {
			calls = append(calls, scriptCall{batchCallbackEndScript, []string{b.batchKeys(cb.batch).meta}, []any{cb.member, cb.state}})
			batches = append(batches, "")
		}
	}
	if len(calls) == 0 {
		return nil, nil
	}
	cmds, err := b.runScripts(ctx, calls)
	if err != nil {
		return nil, b.wrap("record batch member", err)
	}
	var done []string
	for i, c := range cmds {
		res, err := c.Int64()
		if err != nil {
			return nil, b.wrap("record batch member", err)
		}
		if res == 2 && batches[i] != "" {
			done = append(done, batches[i])
		}
		if res == -1 && batches[i] != "" {
			b.log.Warn("conveyor/redis: batch member ended after its batch's record expired (or the batch was never opened)", "batch", batches[i])
		}
	}
	return done, nil
}

// failureOf returns the reason and error of dead-letter fields.
func failureOf(fields []string) (reason, text string) {
	for i := 0; i+1 < len(fields); i += 2 {
		switch fields[i] {
		case fieldReason:
			reason = fields[i+1]
		case fieldError:
			text = fields[i+1]
		}
	}
	return reason, text
}

// recordDeadLetter records in its batch the end of d, about to be
// dead-lettered with fields. It returns the batches completed.
//
// The settle that follows refuses an entry this consumer no longer holds
// (its lease expired and another consumer took it): such a delivery's end
// is not recorded either, the holder's outcome will be. The check is a
// read before the record, so a lease lost in between still records the
// dead letter (first end wins).
func (b *Broker) recordDeadLetter(ctx context.Context, d *broker.Delivery, fields []string) ([]string, error) {
	if d == nil || (d.Job.Headers[broker.HeaderBatch] == "" && d.Job.Headers[broker.HeaderBatchCallback] == "") {
		return nil, nil
	}
	k, entry := b.dkeys(d)
	held, err := b.rdb.XPendingExt(ctx, &goredis.XPendingExtArgs{Stream: k.stream, Group: b.o.Group,
		Start: entry, End: entry, Count: 1, Consumer: b.o.Consumer}).Result()
	if err != nil {
		return nil, b.wrap("record batch member", err)
	}
	if len(held) == 0 {
		return nil, nil // not this consumer's to settle: the settle says so
	}
	reason, text := failureOf(fields)
	state := broker.MemberDead
	if reason == job.ReasonCancelled {
		state = broker.MemberCancelled
	}
	return b.recordEnds(ctx, []*broker.Delivery{d}, state, text)
}

// finishBatches enqueues the callbacks of completed batches; errors are
// logged (the sweeper retries).
func (b *Broker) finishBatches(ctx context.Context, ids []string) {
	for _, id := range ids {
		if err := b.finishBatch(ctx, id, 0); err != nil {
			b.log.Error("conveyor/redis: enqueue batch callback (the sweeper retries it)", "batch", id, "err", err)
		}
	}
}

// finishBatch runs the idempotent steps after batch id completed: enqueue
// its callback (or dead-letter it), end the batch in its parent, mark it
// finished, drop it from the index.
func (b *Broker) finishBatch(ctx context.Context, id string, depth int) error {
	if depth > 100 {
		return fmt.Errorf("batch %s: nesting deeper than 100", id)
	}
	k := b.batchKeys(id)
	meta, err := b.rdb.HGetAll(ctx, k.meta).Result()
	if err != nil {
		return b.wrap("finish batch", err)
	}
	if meta["finish"] != "due" {
		return b.rdb.ZRem(ctx, b.batchIndex(), id).Err()
	}
	n := func(f string) int { v, _ := strconv.Atoi(meta[f]); return v }
	allOK := n("succeeded") == n("total")
	cbState := broker.CallbackNone
	if meta["cb"] != "" {
		var m broker.Message
		if err := json.Unmarshal([]byte(meta["cb"]), &m); err != nil {
			return fmt.Errorf("batch %s: callback record: %w", id, err)
		}
		m.Headers = maps.Clone(m.Headers)
		if m.Headers == nil {
			m.Headers = map[string]string{}
		}
		m.Headers[broker.HeaderBatchCallback] = id
		m.Headers[broker.HeaderBatchSucceeded] = meta["succeeded"]
		m.Headers[broker.HeaderBatchDead] = meta["dead"]
		m.Headers[broker.HeaderBatchCancelled] = meta["cancelled"]
		m.Headers[broker.HeaderBatchTotal] = meta["total"]
		retention := time.Duration(n("retention")) * time.Millisecond
		if meta["require"] == "1" && !allOK {
			if err := b.deadLetterCallback(ctx, id, &m, meta["failed"], retention, depth); err != nil {
				return err
			}
			cbState = broker.CallbackDeadLettered
		} else {
			m.UniqueKey, m.UniqueFor = broker.CallbackUniqueKey(id), retention
			if _, err := b.Publish(ctx, m); err != nil && !errors.Is(err, broker.ErrDuplicate) {
				return err
			}
			cbState = broker.CallbackEnqueued
		}
	}
	if p := meta["parent"]; p != "" {
		state := broker.MemberSucceeded
		if !allOK {
			state = broker.MemberDead
		}
		res, err := batchEndScriptRun(ctx, b, memberEnd{batch: p, member: broker.ChildMemberID(id), state: state, failed: meta["failed"]})
		if err != nil {
			return err
		}
		if res == 2 {
			if err := b.finishBatch(ctx, p, depth+1); err != nil {
				return err
			}
		}
	}
	if err := batchFinishedScript.Run(ctx, b.rdb, []string{k.meta}, cbState).Err(); err != nil {
		return b.wrap("finish batch", err)
	}
	return b.wrap("finish batch", b.rdb.ZRem(ctx, b.batchIndex(), id).Err())
}

func batchEndScriptRun(ctx context.Context, b *Broker, e memberEnd) (int64, error) {
	c := b.memberEndCall(e, b.o.Now().UnixMilli())
	res, err := c.s.Run(ctx, b.rdb, c.keys, c.args...).Int64()
	return res, b.wrap("record batch member", err)
}

// deadLetterCallback dead-letters m, the callback of batch id (a chain's
// next link), because a member failed: the link's end is recorded in its
// own batch first (which may complete it, and dead-letter the link after),
// then the dead letter is added once.
func (b *Broker) deadLetterCallback(ctx context.Context, id string, m *broker.Message, failed string, retention time.Duration, depth int) error {
	origin, why, _ := strings.Cut(failed, ": ")
	m.Headers[broker.HeaderChainFailed] = origin
	now := b.o.Now()
	msg := "conveyor: not run: chain link " + origin + " did not succeed"
	if why != "" {
		msg += ": " + why
	}
	f := job.Failure{Error: msg, Reason: broker.ReasonChainFailed, Origin: m.Topic, At: now}
	j := job.Job{ID: m.ID, Topic: m.Topic, Payload: m.Payload, Headers: m.Headers, MaxAttempts: m.MaxAttempts, Timeout: m.Timeout, Attempt: 1, EnqueuedAt: now}
	if next := m.Headers[broker.HeaderBatch]; next != "" {
		res, err := batchEndScriptRun(ctx, b, memberEnd{batch: next, member: m.ID, state: broker.MemberDead, failed: failed})
		if err != nil {
			return err
		}
		if res == 2 {
			if err := b.finishBatch(ctx, next, depth+1); err != nil {
				return err
			}
		}
	}
	fields := encodeFields(&j, 1, &f)
	if len(fields) > maxSettleValues {
		fields = packFields(fields)
	}
	k, err := b.pubKeys(ctx, m) // the partition the link would have gone to
	if err != nil {
		return b.wrap("dead-letter chain link", err)
	}
	dlq := k.dlq
	args := []any{max(retention, time.Minute).Milliseconds()}
	for _, f := range fields {
		args = append(args, f)
	}
	return b.wrap("dead-letter chain link", deadLetterOnceScript.Run(ctx, b.rdb, []string{dlq, dlq + ":batch-link:" + id}, args...).Err())
}

// sweepBatches finishes, at most every batchSweepInterval, the batches of
// the index whose callback is due: those whose enqueue a crash
// interrupted. It looks at up to 100 batches a pass; open ones are looked
// at again a pass later.
func (b *Broker) sweepBatches(ctx context.Context) {
	now := b.o.Now()
	last := b.batchSweep.Load()
	if now.UnixMilli()-last < batchSweepInterval.Milliseconds() || !b.batchSweep.CompareAndSwap(last, now.UnixMilli()) {
		return
	}
	if _, err := b.SweepBatches(ctx); err != nil {
		b.log.Error("conveyor/redis: sweep batches", "err", err)
	}
}

// SweepBatches finishes the batches of the index that are complete but
// whose callback was not confirmed enqueued (a crash interrupted it), and
// returns how many it finished. Fetch runs it every few seconds; it is
// exported for tests and tools.
func (b *Broker) SweepBatches(ctx context.Context) (int, error) {
	now := b.o.Now()
	ids, err := b.rdb.ZRangeByScore(ctx, b.batchIndex(), &goredis.ZRangeBy{Min: "-inf", Max: strconv.FormatInt(now.UnixMilli(), 10), Count: 100}).Result()
	if err != nil || len(ids) == 0 {
		return 0, b.wrap("sweep batches", err)
	}
	pipe := b.rdb.Pipeline()
	cmds := make([]*goredis.SliceCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HMGet(ctx, b.batchKeys(id).meta, "state", "finish")
	}
	_, _ = pipe.Exec(ctx)
	finished := 0
	var errs []error
	for i, id := range ids {
		v, err := cmds[i].Result()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		state, _ := v[0].(string)
		finish, _ := v[1].(string)
		switch {
		case finish == "due":
			if err := b.finishBatch(ctx, id, 0); err != nil {
				errs = append(errs, err)
				continue
			}
			finished++
		case state == broker.BatchOpen || (state == broker.BatchCancelled && finish == ""):
			b.rdb.ZAddXX(ctx, b.batchIndex(), goredis.Z{Score: float64(now.Add(batchSweepInterval).UnixMilli()), Member: id})
		default: // gone, or finished
			b.rdb.ZRem(ctx, b.batchIndex(), id)
		}
	}
	return finished, b.wrap("sweep batches", errors.Join(errs...))
}

// BatchInfo describes batch id from its record, in one pipeline.
func (b *Broker) BatchInfo(ctx context.Context, id string) (*broker.BatchInfo, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	k := b.batchKeys(id)
	pipe := b.rdb.Pipeline()
	meta := pipe.HGetAll(ctx, k.meta)
	members := pipe.HGetAll(ctx, k.members)
	done := pipe.HGetAll(ctx, k.done)
	results := pipe.HGetAll(ctx, k.results)
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, b.wrap("batch info", err)
	}
	m := meta.Val()
	if len(m) == 0 {
		return nil, fmt.Errorf("%w: batch %q", broker.ErrNotFound, id)
	}
	n := func(f string) int { v, _ := strconv.Atoi(m[f]); return v }
	ms := func(f string) time.Time {
		if v, err := strconv.ParseInt(m[f], 10, 64); err == nil && v > 0 {
			return time.UnixMilli(v)
		}
		return time.Time{}
	}
	bi := &broker.BatchInfo{ID: id, State: m["state"], Total: n("total"), Succeeded: n("succeeded"), Dead: n("dead"), Cancelled: n("cancelled"),
		CallbackID: m["cbid"], CallbackState: m["cbstate"], RequireSuccess: m["require"] == "1", Parent: m["parent"], Failed: m["failed"],
		CreatedAt: ms("created"), CompletedAt: ms("completed")}
	if bi.CallbackState == "due" {
		bi.CallbackState = broker.CallbackDue
	}
	if m["cb"] != "" {
		var cb broker.Message
		if json.Unmarshal([]byte(m["cb"]), &cb) == nil {
			bi.CallbackTopic = cb.Topic
		}
	}
	type indexed struct {
		i int
		m broker.BatchMember
	}
	var list []indexed
	for mid, v := range members.Val() {
		is, topic, _ := strings.Cut(v, ":")
		i, _ := strconv.Atoi(is)
		bm := broker.BatchMember{ID: mid, Topic: topic, State: broker.MemberPending}
		if s, ok := done.Val()[mid]; ok {
			bm.State = s
		}
		if r, ok := results.Val()[mid]; ok {
			bm.Result = []byte(r)
		}
		list = append(list, indexed{i, bm})
	}
	slices.SortFunc(list, func(a, b indexed) int { return a.i - b.i })
	bi.Members = make([]broker.BatchMember, len(list))
	for i, x := range list {
		bi.Members[i] = x.m
	}
	return bi, nil
}

// CancelBatch marks batch id cancelled (batchCancelScript), then cancels its
// pending members with Cancel (which records the waiting ones as
// cancelled), records the members not found (never published) as
// cancelled, cancels its child batches, and ends it as cancelled in its
// parent.
func (b *Broker) CancelBatch(ctx context.Context, id string) (*broker.BatchInfo, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	if err := b.cancelBatch(ctx, id, 0); err != nil {
		return nil, err
	}
	return b.BatchInfo(ctx, id)
}

func (b *Broker) cancelBatch(ctx context.Context, id string, depth int) error {
	k := b.batchKeys(id)
	res, err := batchCancelScript.Run(ctx, b.rdb, []string{k.meta}).Int64()
	if err != nil {
		return b.wrap("cancel batch", err)
	}
	if res == -1 {
		return fmt.Errorf("%w: batch %q", broker.ErrNotFound, id)
	}
	if res == 0 || depth > 100 {
		return nil
	}
	bi, err := b.BatchInfo(ctx, id)
	if err != nil {
		return err
	}
	var errs []error
	for _, m := range bi.Members {
		if m.State != broker.MemberPending {
			continue
		}
		if m.Topic == "" {
			if err := b.cancelBatch(ctx, strings.TrimPrefix(m.ID, "batch:"), depth+1); err != nil && !errors.Is(err, broker.ErrNotFound) {
				errs = append(errs, err)
			}
			if _, err := batchEndScriptRun(ctx, b, memberEnd{batch: id, member: m.ID, state: broker.MemberCancelled, failed: m.ID + ": cancelled"}); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		_, err := b.Cancel(ctx, m.Topic, m.ID)
		if errors.Is(err, broker.ErrNotFound) {
			_, err = batchEndScriptRun(ctx, b, memberEnd{batch: id, member: m.ID, state: broker.MemberCancelled, failed: m.Topic + "/" + m.ID + ": cancelled"})
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	if bi.Parent != "" {
		if _, err := batchEndScriptRun(ctx, b, memberEnd{batch: bi.Parent, member: broker.ChildMemberID(id), state: broker.MemberCancelled, failed: broker.ChildMemberID(id) + ": cancelled"}); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// recordCancelled records in its batch the end of j, which Cancel has just
// dead-lettered, and finishes the batches that completes.
func (b *Broker) recordCancelled(ctx context.Context, j *job.Job) {
	done, err := b.recordEnds(ctx, []*broker.Delivery{{Job: *j}}, broker.MemberCancelled, "cancelled")
	if err != nil {
		b.log.Error("conveyor/redis: record a cancelled batch member", "job_id", j.ID, "err", err)
	}
	b.finishBatches(ctx, done)
}
