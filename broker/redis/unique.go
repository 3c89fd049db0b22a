package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/broker"
)

// Unique jobs.
//
// A job published with a unique key claims it: the string key
// <ns>:{<topic>}:unique:<key> holds the job's ID, in the topic's hash slot
// (for a partitioned topic, the :unique:<key> key of the job's partition),
// set by the script that adds the job (publishUniqueScript), so that a
// claim and its job are one atomic step. While the claim names a live job,
// publishing the key again adds nothing and returns the holder's ID.
//
// The job carries its key in its stream entry (unique_key, and
// unique_for_ms for UniqueFor), so that every settle knows the claim:
//
//   - Ack (ackUniqueScript, in the ack's pipeline) deletes the claim, or
//     sets it to expire at EnqueuedAt + UniqueFor, when the ack acknowledged
//     the entry and the claim still names the job.
//   - Retry and snooze (settleScript) keep it, renewing its safety TTL.
//   - Dead-lettering (settleScript: DeadLetter, poison protection,
//     malformed entries) deletes it when it still names the job.
//   - A replay (replayScript) takes it again, or leaves the dead letter
//     when another job holds it.
//   - DeleteDelayed (releaseUniqueScript) deletes it when it still names
//     the job.
//
// Every deletion compares first, so a settle never releases a claim that a
// later job of the same key holds. While the job lives, the claim expires
// Options.UniqueClaimTTL after the job's due time, a safety net for a job
// that vanished without a settle.

// claimTTL returns the safety TTL (ms) of a claim whose job is re-enqueued
// by a settle in mode with argument arg4 (the due time, for mode
// "delayed"): Options.UniqueClaimTTL after the job is due.
func (b *Broker) claimTTL(mode, arg4 string) int64 {
	ttl := b.o.UniqueClaimTTL.Milliseconds()
	if mode == "delayed" {
		if due, err := strconv.ParseInt(arg4, 10, 64); err == nil {
			ttl += max(due-b.o.Now().UnixMilli(), 0)
		}
	}
	return max(ttl, 1)
}

// publishUniqueCall returns the call of publishUniqueScript that adds m
// (validated, with job ID id: "" for the entry ID) to its partition k
// unless its key is held.
func (b *Broker) publishUniqueCall(m *broker.Message, k keys, id string, now time.Time) scriptCall {
	ttl := b.o.UniqueClaimTTL
	if due := m.Due(now); due.After(now) {
		ttl += due.Sub(now)
		member := encodeMember(encodeFields(b.delayedJob(m, id, now), 1, nil))
		return scriptCall{publishUniqueScript, []string{k.unique + m.UniqueKey, k.delayed},
			[]any{ttl.Milliseconds(), id, due.UnixMilli(), member}}
	}
	fields := xaddArgs(m, id, k.stream)[3:] // after "xadd", the stream and "*"
	args := append([]any{ttl.Milliseconds(), id, "", k.receipt("")}, fields...)
	return scriptCall{publishUniqueScript, []string{k.unique + m.UniqueKey, k.stream}, args}
}

// publishUnique publishes m, a unique message of a registered topic, alone:
// one script run, no pipeline. It returns what PublishBatch returns.
func (b *Broker) publishUnique(ctx context.Context, m *broker.Message, k keys, id string, now time.Time) ([]string, error) {
	c := b.publishUniqueCall(m, k, id, now)
	got, added, err := publishUniqueReply(c.s.Run(ctx, b.rdb, c.keys, c.args...))
	if err != nil {
		return nil, b.wrap("publish", err)
	}
	if !added {
		return []string{got}, &broker.BatchError{Duplicates: []int{0}, Err: &broker.DuplicateError{Topic: m.Topic, Key: m.UniqueKey, ID: got}}
	}
	if due := m.Due(now); due.After(now) {
		b.noteDue(k.id, due.UnixMilli())
	}
	return []string{got}, nil
}

// publishUniqueReply reads publishUniqueScript's reply: the job's ID, and
// whether the key was free (false: the ID is the holder's).
func publishUniqueReply(c goredis.Cmder) (string, bool, error) {
	res, err := c.(*goredis.Cmd).Slice()
	if err != nil {
		return "", false, err
	}
	if len(res) != 2 {
		return "", false, fmt.Errorf("unexpected reply of %d elements", len(res))
	}
	added, _ := res[0].(int64)
	id, _ := res[1].(string)
	return id, added == 1, nil
}

// ackUniqueCall returns the call of ackUniqueScript that acks d, a unique
// job, and releases or keeps its claim.
func (b *Broker) ackUniqueCall(d *broker.Delivery) scriptCall {
	keep := int64(0)
	if d.Job.UniqueFor > 0 {
		keep = max(d.Job.EnqueuedAt.Add(d.Job.UniqueFor).UnixMilli(), 1)
	}
	k, id := b.dkeys(d)
	return scriptCall{ackUniqueScript, []string{k.stream, k.unique + d.Job.UniqueKey},
		[]any{b.o.Group, id, d.Job.ID, keep}}
}

// duplicates turns the refused replays of replayScript's reply (entry ID,
// holder pairs) into errors matching broker.ErrDuplicate; keyOf gives the
// unique key of each dead letter.
func duplicates(topic string, pairs []any, keyOf map[string]string) []error {
	var out []error
	for i := 0; i+1 < len(pairs); i += 2 {
		entry, _ := pairs[i].(string)
		holder, _ := pairs[i+1].(string)
		out = append(out, fmt.Errorf("dead letter %s of %q not replayed: %w", entry, topic,
			&broker.DuplicateError{Topic: topic, Key: keyOf[entry], ID: holder}))
	}
	return out
}

// uniqueKeysOf reads the unique keys of the dead letters ids of stream dlq
// (one pipelined XRANGE each; entries never change, so what it reads holds
// when the replay runs). Dead letters without a key are left out.
func (b *Broker) uniqueKeysOf(ctx context.Context, dlq string, ids []string) (map[string]string, error) {
	pipe := b.rdb.Pipeline()
	cmds := make([]*goredis.XMessageSliceCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.XRange(ctx, dlq, id, id)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, goredis.Nil) {
		return nil, err
	}
	keys := map[string]string{}
	for i, c := range cmds {
		for _, m := range c.Val() {
			if s, ok := m.Values[fieldUniqueKey].(string); ok && s != "" {
				keys[ids[i]] = s
			}
		}
	}
	return keys, nil
}

// publishUniqueScript adds a unique job unless its key is held: GET of the
// claim, then XADD to the stream (or ZADD to the delayed set) and SET of the
// claim to the job's ID, in one atomic step.
//
// KEYS[1] the claim (<ns>:{<topic>}:unique:<key>)
// KEYS[2] the topic's stream, or its delayed set
// ARGV[1] the claim's safety TTL (ms)
// ARGV[2] the job ID; "" when the stream entry's receipt is the job ID
// ARGV[3] delayed: the due time (unix ms, the score); stream: ""
// ARGV[4] delayed: the encoded member; stream: what follows the entry ID
// in the job ID when ARGV[2] is "" (a partition's receipt suffix, "@<n>/<i>";
// "" for a topic's historical keys)
// ARGV[5..] stream: the entry's field, value pairs
//
// Returns {1, job ID} when the job was added, {0, holder's job ID} when the
// key is held.
var publishUniqueScript = newScript("publish-unique", `
local held = redis.call('GET', KEYS[1])
if held then
  return {0, held}
end
local id = ARGV[2]
if ARGV[3] ~= '' then
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
else
  local e = redis.call('XADD', KEYS[2], '*', unpack(ARGV, 5))
  if id == '' then id = e .. ARGV[4] end
end
redis.call('SET', KEYS[1], id, 'PX', ARGV[1])
return {1, id}
`)

// ackUniqueScript acks a unique job's entry (XACK + XDEL, as a plain ack)
// and, when the XACK acknowledged it and the claim still names the job,
// deletes the claim or makes it expire at the given time (PEXPIREAT: a time
// already past deletes it).
//
// KEYS[1] stream
// KEYS[2] the claim
// ARGV[1] group
// ARGV[2] entry ID
// ARGV[3] job ID
// ARGV[4] keep the claim until (unix ms); "0": delete it now
//
// Returns the number of entries acknowledged (0 or 1).
var ackUniqueScript = newScript("ack-unique", `
local n = redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
if n == 1 and redis.call('GET', KEYS[2]) == ARGV[3] then
  if ARGV[4] == '0' then
    redis.call('DEL', KEYS[2])
  else
    redis.call('PEXPIREAT', KEYS[2], ARGV[4])
  end
end
return n
`)

// releaseUniqueScript deletes a claim if it names the given job.
//
// KEYS[1] the claim
// ARGV[1] job ID
//
// Returns 1 when the claim was deleted, else 0.
var releaseUniqueScript = newScript("release-unique", `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)
