package redis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/broker"
)

var (
	_ broker.Canceller     = (*Broker)(nil)
	_ broker.CancelWatcher = (*Broker)(nil)
)

// MaxCancelScan bounds the stream entries and the delayed-set members
// [Broker.Cancel] reads to find a job by ID: finding a job by ID is a scan
// (O(n) in the entries before it), acceptable for an operator's action but
// not without a bound. A job further than this from the start of its
// stream or delayed set is not found, and Cancel says so.
const MaxCancelScan = 100_000

// DefaultCancelRequestTTL is the default of Options.CancelRequestTTL.
const DefaultCancelRequestTTL = 10 * time.Minute

// cancelTries is how often Cancel looks a job up again when the job moved
// between the lookup and the script (it was delivered, settled, retried or
// promoted meanwhile).
const cancelTries = 3

// cancelRequests returns the key of the topic's cancel requests: a ZSET of
// stream entry IDs scored by the time (unix ms) the request lapses, in the
// topic's hash slot: <ns>:{T}:cancel (<ns>:{T}:dlq:cancel for T.dlq).
func (k keys) cancelRequests() string {
	return strings.TrimSuffix(k.stream, ":stream") + ":cancel"
}

// cancelEntryScript cancels one stream entry in one atomic step. An entry
// pending in the group (delivered, not settled: its job is running) gets a
// cancel request: its ID is added to the cancel-request set, scored by when
// the request lapses, and requests that have lapsed are removed. An entry
// not pending (waiting to be read) is moved to the dead-letter stream: XADD
// of the dead-letter fields, then XDEL.
//
// KEYS[1] stream
// KEYS[2] dead-letter stream
// KEYS[3] cancel-request ZSET
// ARGV[1] group
// ARGV[2] entry ID
// ARGV[3] now (unix ms)
// ARGV[4] when the request lapses (unix ms)
// ARGV[5] the dead-letter cap (<= 0: no cap)
// ARGV[6..] the dead letter's field, value pairs
//
// For a unique job, KEYS[4] is its claim and the job ID follows the fields:
// a dead-lettered job's claim is deleted when it still names the job.
//
// Returns {result, overflow}: result 0 when the entry is gone (nothing
// written), 1 when it was dead-lettered, 2 when a request was recorded;
// overflow 1 when the dead letter was added to a stream at or above the cap.
var cancelEntryScript = newScript("cancel-entry", `
if #redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2]) == 0 then
  return {0, 0}
end
local p = redis.pcall('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if type(p) == 'table' and not p.err and #p > 0 then
  local old = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[3], 'LIMIT', 0, 1000)
  if #old > 0 then
    redis.call('ZREM', KEYS[3], unpack(old))
  end
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[2])
  return {2, 0}
end
local overflow = 0
local cap = tonumber(ARGV[5])
if cap > 0 and redis.call('XLEN', KEYS[2]) >= cap then
  overflow = 1
end
local last = #ARGV
if KEYS[4] then last = last - 1 end
redis.call('XADD', KEYS[2], '*', unpack(ARGV, 6, last))
redis.call('XDEL', KEYS[1], ARGV[2])
if KEYS[4] and redis.call('GET', KEYS[4]) == ARGV[last + 1] then
  redis.call('DEL', KEYS[4])
end
return {1, overflow}
`)

// cancelDelayedScript moves one delayed-set member to the dead-letter
// stream in one atomic step: ZREM, and XADD only when the member was there.
//
// KEYS[1] delayed ZSET
// KEYS[2] dead-letter stream
// ARGV[1] the member
// ARGV[2] the dead-letter cap (<= 0: no cap)
// ARGV[3..] the dead letter's field, value pairs
//
// For a unique job, KEYS[3] is its claim and the job ID follows the fields,
// as for cancelEntryScript.
//
// Returns {moved, overflow}: moved 0 when the member is gone (nothing
// written), 1 otherwise; overflow as for cancelEntryScript.
var cancelDelayedScript = newScript("cancel-delayed", `
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then
  return {0, 0}
end
local overflow = 0
local cap = tonumber(ARGV[2])
if cap > 0 and redis.call('XLEN', KEYS[2]) >= cap then
  overflow = 1
end
local last = #ARGV
if KEYS[3] then last = last - 1 end
redis.call('XADD', KEYS[2], '*', unpack(ARGV, 3, last))
if KEYS[3] and redis.call('GET', KEYS[3]) == ARGV[last + 1] then
  redis.call('DEL', KEYS[3])
end
return {1, overflow}
`)

// Cancel cancels the job of topic with job ID id, in one atomic script on
// the topic's hash slot:
//
//   - a job waiting in the stream (not yet delivered) is deleted from it and
//     added to the dead-letter stream with reason job.ReasonCancelled
//     ([broker.CancelledQueued]);
//   - a delayed job (published with a delay, retried or snoozed) is removed
//     from the delayed set and dead-lettered the same way
//     ([broker.CancelledDelayed]);
//   - a job delivered and not settled (running) gets a cancel request in
//     <ns>:{T}:cancel, a ZSET of entry IDs that lapses after
//     Options.CancelRequestTTL ([broker.CancelRequested]); the server
//     holding the job reads it through [Broker.CancelRequested].
//
// The job is found by a scan: the entry that id names as a receipt is
// tried first (the job ID of a job published without one is its first
// entry's receipt: the entry ID, followed by "@<n>/<i>" on a partitioned
// topic, whose partition is then looked at first), then the stream and the
// delayed set of each partition are read from their start, 1,000 entries
// per call, at most [MaxCancelScan] entries of each. An id that is no job's
// ID but a receipt of topic (a pending entry's, as the dashboard lists
// them) names that entry's job. A job that moves while it is looked up
// (delivered, retried, promoted) is looked up again, up to three times.
//
// It returns an error wrapping broker.ErrNotFound when topic holds no such
// job (never published, settled already, or dead-lettered), and an error
// saying the scan was cut when the job was not among the first
// MaxCancelScan entries.
func (b *Broker) Cancel(ctx context.Context, topic, id string) (broker.CancelResult, error) {
	if err := b.check(ctx); err != nil {
		return 0, err
	}
	if err := ValidateTopic(topic); err != nil {
		return 0, err
	}
	parts, err := b.allKeys(ctx, topic)
	if err != nil {
		return 0, err
	}
	parts = b.receiptFirst(topic, id, parts)
	cut := false
	for _, k := range parts {
		res, truncated, err := b.cancelIn(ctx, k, id)
		if err != nil || res != 0 {
			return res, err
		}
		cut = cut || truncated
	}
	if cut {
		return 0, fmt.Errorf("conveyor/redis: cancel: job %q of %q is not among the first %d entries of its stream or delayed set (the lookup by ID is bounded); nothing was cancelled", id, topic, MaxCancelScan)
	}
	return 0, fmt.Errorf("%w: job %q of %q (settled already, dead-lettered, or never published)", broker.ErrNotFound, id, topic)
}

// cancelIn cancels job id if it is in k's stream or delayed set (see
// Cancel); res is 0 when it is in neither, truncated then says a scan
// stopped at its bound.
func (b *Broker) cancelIn(ctx context.Context, k keys, id string) (res broker.CancelResult, cut bool, err error) {
	for range cancelTries {
		res, found, truncated, err := b.cancelInStream(ctx, k, id)
		if err != nil || res != 0 {
			return res, false, err
		}
		cut = cut || truncated
		if found {
			continue // it moved: look again
		}
		res, found, truncated, err = b.cancelInDelayed(ctx, k, id)
		if err != nil || res != 0 {
			return res, false, err
		}
		cut = cut || truncated
		if !found {
			break
		}
	}
	return 0, cut, nil
}

// jobIDIn returns the job ID of an entry of k's stream or dead-letter
// stream: its id field, or else its receipt.
func jobIDIn(k keys, m goredis.XMessage) string {
	if s, ok := m.Values[fieldID].(string); ok && s != "" {
		return s
	}
	return k.receipt(m.ID)
}

// entryNamed returns the entry ID that id names as a receipt of k's
// streams, or "" when it names none.
func (b *Broker) entryNamed(k keys, id string) string {
	if k.n <= 1 {
		if validEntryID(id) {
			return id
		}
		return ""
	}
	if pk, entry, ok := b.parseReceipt(k.topic, id); ok && pk.n == k.n && pk.part == k.part {
		return entry
	}
	return ""
}

// receiptFirst returns parts, the partitions of topic, with the partition
// that id names as a receipt first (added when a retired layout's).
func (b *Broker) receiptFirst(topic, id string, parts []keys) []keys {
	k, _, ok := b.parseReceipt(topic, id)
	if !ok {
		return parts
	}
	out := append(make([]keys, 0, len(parts)+1), k)
	for _, p := range parts {
		if p.stream != k.stream {
			out = append(out, p)
		}
	}
	return out
}

// findEntry returns the entry of job id in stream, k's stream or
// dead-letter stream (see Broker.Cancel for the lookup), whether it was
// found, and whether the scan stopped at its bound. Only in k's stream does
// the entry that id names as a receipt stand for its job: the dead-letter
// stream numbers its entries apart, so an entry there with the ID of a
// job's first entry is another job's dead letter.
func (b *Broker) findEntry(ctx context.Context, k keys, stream, id string) (goredis.XMessage, bool, bool, error) {
	var byEntryID *goredis.XMessage
	if entry := b.entryNamed(k, id); entry != "" && stream == k.stream {
		ms, err := b.rdb.XRange(ctx, stream, entry, entry).Result()
		if err != nil {
			return goredis.XMessage{}, false, false, err
		}
		if len(ms) == 1 {
			if jobIDIn(k, ms[0]) == id {
				return ms[0], true, false, nil
			}
			byEntryID = &ms[0]
		}
	}
	start := "-"
	for read := 0; read < MaxCancelScan; {
		ms, err := b.rdb.XRangeN(ctx, stream, start, "+", snapshotBatch).Result()
		if err != nil {
			return goredis.XMessage{}, false, false, err
		}
		read += len(ms)
		if i := slices.IndexFunc(ms, func(m goredis.XMessage) bool { return jobIDIn(k, m) == id }); i >= 0 {
			return ms[i], true, false, nil
		}
		if len(ms) < snapshotBatch {
			if byEntryID != nil {
				return *byEntryID, true, false, nil
			}
			return goredis.XMessage{}, false, false, nil
		}
		start = "(" + ms[len(ms)-1].ID
	}
	if byEntryID != nil {
		return *byEntryID, true, false, nil
	}
	return goredis.XMessage{}, false, true, nil
}

// cancelInStream cancels job id if it is in k's stream. res is 0 when
// nothing was cancelled; found then says the job was found but moved
// before the script ran.
func (b *Broker) cancelInStream(ctx context.Context, k keys, id string) (res broker.CancelResult, found, truncated bool, err error) {
	m, found, truncated, err := b.findEntry(ctx, k, k.stream, id)
	if err != nil || !found {
		return 0, false, truncated, b.wrap("cancel", err)
	}
	d := decodeEntry(k.topic, m.ID, k.receipt(m.ID), m.Values)
	now := b.o.Now()
	f := broker.CancelFailure(k.topic, broker.CancelledQueued, now)
	fields := encodeFields(&d.job, d.attempt, &f)
	if len(fields) > maxSettleValues {
		fields = packFields(fields)
	}
	args := make([]any, 0, 5+len(fields))
	args = append(args, b.o.Group, m.ID, now.UnixMilli(), now.Add(b.o.CancelRequestTTL).UnixMilli(), b.o.DeadLetterMaxLen)
	for _, f := range fields {
		args = append(args, f)
	}
	ks := []string{k.stream, k.dlq, k.cancelRequests()}
	if d.job.UniqueKey != "" {
		ks = append(ks, k.unique+d.job.UniqueKey)
		args = append(args, d.job.ID)
	}
	r, err := b.runCancel(ctx, cancelEntryScript, ks, args, k.topic, d.job.ID)
	switch {
	case err != nil:
		return 0, true, false, err
	case r == 1:
		b.recordCancelled(ctx, &d.job) // see batch.go
		return broker.CancelledQueued, true, false, nil
	case r == 2:
		return broker.CancelRequested, true, false, nil
	}
	return 0, true, false, nil
}

// findDelayed returns the member of k's delayed set whose job ID is id,
// whether it was found, and whether the scan stopped at limit members (0:
// no limit).
func (b *Broker) findDelayed(ctx context.Context, k keys, id string, limit int) (string, bool, bool, error) {
	for start := int64(0); limit <= 0 || start < int64(limit); start += snapshotBatch {
		ms, err := b.rdb.ZRange(ctx, k.delayed, start, start+snapshotBatch-1).Result()
		if err != nil {
			return "", false, false, err
		}
		for _, m := range ms {
			if decodeMemberJob(k.topic, m).ID == id {
				return m, true, false, nil
			}
		}
		if len(ms) < snapshotBatch {
			return "", false, false, nil
		}
	}
	return "", false, true, nil
}

// cancelInDelayed cancels job id if it is in k's delayed set; the results
// are those of cancelInStream.
func (b *Broker) cancelInDelayed(ctx context.Context, k keys, id string) (res broker.CancelResult, found, truncated bool, err error) {
	m, found, truncated, err := b.findDelayed(ctx, k, id, MaxCancelScan)
	if err != nil || !found {
		return 0, false, truncated, b.wrap("cancel", err)
	}
	j := decodeMemberJob(k.topic, m)
	f := broker.CancelFailure(k.topic, broker.CancelledDelayed, b.o.Now())
	fields := encodeFields(&j, j.Attempt, &f)
	if len(fields) > maxSettleValues {
		fields = packFields(fields)
	}
	args := make([]any, 0, 2+len(fields))
	args = append(args, m, b.o.DeadLetterMaxLen)
	for _, f := range fields {
		args = append(args, f)
	}
	ks := []string{k.delayed, k.dlq}
	if j.UniqueKey != "" {
		ks = append(ks, k.unique+j.UniqueKey)
		args = append(args, j.ID)
	}
	r, err := b.runCancel(ctx, cancelDelayedScript, ks, args, k.topic, id)
	if err != nil || r != 1 {
		return 0, true, false, err
	}
	b.recordCancelled(ctx, &j) // see batch.go
	return broker.CancelledDelayed, true, false, nil
}

// runCancel runs a cancel script and returns its result, counting and
// logging a dead letter stored over the cap.
func (b *Broker) runCancel(ctx context.Context, s script, keys []string, args []any, topic, id string) (int64, error) {
	res, err := s.Run(ctx, b.rdb, keys, args...).Int64Slice()
	if err != nil {
		return 0, b.wrap("cancel", err)
	}
	if len(res) < 2 {
		return 0, b.wrap("cancel", errors.New("unexpected script reply"))
	}
	if res[1] == 1 {
		b.overflows.Add(1)
		b.log.Error("conveyor/redis: dead-letter stream at or above its cap; dead letter stored anyway",
			"topic", topic, "job_id", id, "stream", keys[1], "cap", b.o.DeadLetterMaxLen)
	}
	return res[0], nil
}

// CancelRequested returns the receipts (entry IDs) of the deliveries among
// ds whose job has a cancel request that has not lapsed: one ZRANGEBYSCORE
// of the live requests of each topic of ds, pipelined in one round trip (one
// per Cluster node). The reply holds every live request of those topics,
// which are few: requests are an operator's, and lapse after
// Options.CancelRequestTTL.
func (b *Broker) CancelRequested(ctx context.Context, ds ...*broker.Delivery) ([]string, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	byKey := map[string][]string{}
	var order []string
	for _, d := range ds {
		if d == nil {
			continue
		}
		k, entry := b.dkeys(d)
		key := k.cancelRequests()
		if _, ok := byKey[key]; !ok {
			order = append(order, key)
		}
		byKey[key] = append(byKey[key], entry, d.Receipt)
	}
	if len(order) == 0 {
		return nil, nil
	}
	now := "(" + strconv.FormatInt(b.o.Now().UnixMilli(), 10)
	pipe := b.rdb.Pipeline()
	cmds := make([]*goredis.StringSliceCmd, len(order))
	for i, key := range order {
		cmds[i] = pipe.ZRangeByScore(ctx, key, &goredis.ZRangeBy{Min: now, Max: "+inf"})
	}
	_, _ = pipe.Exec(ctx)
	var out []string
	for i, c := range cmds {
		live, err := c.Result()
		if err != nil {
			return nil, b.wrap("cancel requests", err)
		}
		rs := byKey[order[i]] // entry ID, receipt pairs
		for j := 0; j+1 < len(rs); j += 2 {
			if slices.Contains(live, rs[j]) {
				out = append(out, rs[j+1])
			}
		}
	}
	return out, nil
}
