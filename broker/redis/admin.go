package redis

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/job"
)

// Batch sizes of the admin operations.
const (
	replayBatch   = 100
	purgeBatch    = 500
	snapshotBatch = 1000
)

// Topics lists the topics of the namespace, sorted: those in the registry
// set <ns>:topics (every topic published to, or fetched from, through a
// Broker) and those discovered as streams that exist without being
// registered (written by another producer, such as redis-cli XADD).
// Dead-letter topics are not listed separately: a dead-letter stream lists
// its origin topic. Topics fails only when the broker is closed, ctx is
// done when it is called, or the registry cannot be read.
//
// Discovery never makes Topics fail or wait for a scan. It scans the keyspace with
// SCAN … MATCH <ns>:{*}:* COUNT 1000 TYPE stream (every master of a Redis
// Cluster, each with a cursor of its own), at most 4 SCAN calls per Topics
// call (a few milliseconds): the cursors are kept between calls, so a pass
// over a large keyspace is spread over many calls (about one call per 4,000
// keys). A new pass starts at the first call Options.DiscoverInterval after
// the previous pass completed. Topics lists the topics the last completed
// pass found and those the pass in progress found so far, and adds them to
// the registry. A call made while another call is scanning does not scan
// and does not wait: it lists what was found so far.
//
// A failed SCAN call ends the call's scan without an error, and the pass
// goes on from the same cursor at the next call. The failure is logged at
// warning level, once per distinct error and otherwise at most once per
// DiscoverInterval; ctx's deadline or cancellation is not logged. A master
// whose SCAN fails does not hold up the others. A Redis user not allowed to
// run SCAN gets the registered topics and what earlier passes found, one
// warning in the log, and another try at each DiscoverInterval; the listing
// never drops a topic because SCAN was refused.
func (b *Broker) Topics(ctx context.Context) ([]string, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	ts, err := b.rdb.SMembers(ctx, b.registryKey()).Result()
	if err != nil {
		return nil, b.wrap("topics", err)
	}
	ts = append(ts, b.discoverTopics(ctx)...)
	slices.Sort(ts)
	return slices.Compact(ts), nil
}

// registerTopics adds the base topics of ks to the registry set, once per
// process.
func (b *Broker) registerTopics(ctx context.Context, ks []keys) error {
	var add []any
	for _, k := range ks {
		if _, ok := b.topics.Load(k.base); !ok {
			add = append(add, k.base)
		}
	}
	if len(add) == 0 {
		return nil
	}
	if err := b.rdb.SAdd(ctx, b.registryKey(), add...).Err(); err != nil {
		return b.wrap("register topics", err)
	}
	for _, t := range add {
		b.topics.Store(t, struct{}{})
	}
	return nil
}

// Inspect describes topic in two pipelined round trips: stream length and
// newest entry, groups, delayed and dead-letter counts; then each group's
// consumers.
//
// Lag is computed, not taken from XINFO (which can be NULL, or wrong after
// deletions, on Redis 7.0): since acknowledged entries are deleted, the
// entries of a group not yet delivered are the stream's length minus the
// group's pending entries. With several groups reading one stream this is an
// estimate.
func (b *Broker) Inspect(ctx context.Context, topic string) (*broker.TopicInfo, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	if topic == "" {
		return nil, fmt.Errorf("%w: empty topic", broker.ErrInvalidMessage)
	}
	if parts, err := b.partsOf(ctx, topic); err != nil || parts != nil {
		if err != nil {
			return nil, err
		}
		return b.inspectParts(ctx, topic, parts)
	}
	return b.inspectKeys(ctx, topic, b.keysFor(topic))
}

// inspectKeys is Inspect of the stream of k.
func (b *Broker) inspectKeys(ctx context.Context, topic string, k keys) (*broker.TopicInfo, error) {
	pipe := b.rdb.Pipeline()
	length := pipe.XLen(ctx, k.stream)
	last := pipe.XRevRangeN(ctx, k.stream, "+", "-", 1)
	groups := pipe.XInfoGroups(ctx, k.stream)
	delayed := pipe.ZCard(ctx, k.delayed)
	dead := pipe.XLen(ctx, k.dlq)
	paused := pipe.Get(ctx, k.paused)
	_, _ = pipe.Exec(ctx)
	if err := paused.Err(); err != nil && !errors.Is(err, goredis.Nil) {
		return nil, b.wrap("inspect "+topic, err)
	}
	for _, c := range []goredis.Cmder{length, last, delayed, dead} {
		if err := c.Err(); err != nil {
			return nil, b.wrap("inspect "+topic, err)
		}
	}
	info := &broker.TopicInfo{
		Topic:       topic,
		Length:      length.Val(),
		Delayed:     delayed.Val(),
		DeadLetters: dead.Val(),
		Groups:      []broker.GroupInfo{},
		Paused:      paused.Err() == nil,
	}
	if ls := last.Val(); len(ls) > 0 {
		info.LastID = ls[0].ID
	}
	gs, err := groups.Result()
	if err != nil && !isNoSuchKey(err) {
		return nil, b.wrap("inspect "+topic, err)
	}
	if len(gs) == 0 {
		info.Lag = info.Length
		return info, nil
	}
	pipe = b.rdb.Pipeline()
	consumers := make([]*goredis.XInfoConsumersCmd, len(gs))
	for i, g := range gs {
		consumers[i] = pipe.XInfoConsumers(ctx, k.stream, g.Name)
	}
	_, _ = pipe.Exec(ctx)
	for i, g := range gs {
		gi := broker.GroupInfo{
			Name:            g.Name,
			Pending:         g.Pending,
			Lag:             max(info.Length-g.Pending, 0),
			LastDeliveredID: g.LastDeliveredID,
			Consumers:       []broker.ConsumerInfo{},
		}
		cs, err := consumers[i].Result()
		if err != nil && !isNoGroup(err) {
			return nil, b.wrap("inspect "+topic, err)
		}
		for _, c := range cs {
			gi.Consumers = append(gi.Consumers, broker.ConsumerInfo{Name: c.Name, Pending: c.Pending, Idle: c.Idle})
		}
		info.Pending += gi.Pending
		info.Lag = max(info.Lag, gi.Lag)
		info.Groups = append(info.Groups, gi)
	}
	return info, nil
}

func isNoSuchKey(err error) bool {
	return err != nil && strings.Contains(err.Error(), "no such key")
}

// DeadLetters lists up to limit dead letters of topic (from its dead-letter
// stream, XRANGE), oldest first, starting after the entry with ID after (""
// for the start). limit <= 0 means all. A DeadLetter's ID is its entry ID in
// the dead-letter stream; its Job.Topic is the dead-letter topic.
func (b *Broker) DeadLetters(ctx context.Context, topic, after string, limit int) ([]broker.DeadLetter, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	if parts, err := b.partsOf(ctx, topic); err != nil || parts != nil {
		if err != nil {
			return nil, err
		}
		return b.deadLettersParts(ctx, topic, parts, after, limit)
	}
	return b.deadLettersKeys(ctx, topic, b.keysFor(topic), after, limit)
}

// deadLettersKeys is DeadLetters of the dead-letter stream of k.
func (b *Broker) deadLettersKeys(ctx context.Context, topic string, k keys, after string, limit int) ([]broker.DeadLetter, error) {
	start := "-"
	if after != "" {
		if !validEntryID(after) {
			return nil, fmt.Errorf("%w: dead letter %q of %q (not a stream entry ID)", broker.ErrNotFound, after, topic)
		}
		start = "(" + after
	}
	var msgs []goredis.XMessage
	var err error
	if limit > 0 {
		msgs, err = b.rdb.XRangeN(ctx, k.dlq, start, "+", int64(limit)).Result()
	} else {
		msgs, err = b.rdb.XRange(ctx, k.dlq, start, "+").Result()
	}
	if err != nil {
		return nil, b.wrap("list dead letters of "+topic, err)
	}
	out := make([]broker.DeadLetter, len(msgs))
	for i, m := range msgs {
		r := k.receipt(m.ID)
		out[i] = broker.DeadLetter{ID: r, Job: decodeEntry(job.DeadLetterTopic(topic), m.ID, r, m.Values).job}
	}
	return out, nil
}

// DeadLetterByID returns the dead letter of topic with entry ID id, or an
// error wrapping broker.ErrNotFound.
func (b *Broker) DeadLetterByID(ctx context.Context, topic, id string) (*broker.DeadLetter, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	k, id := b.receiptKeys(topic, id)
	if !validEntryID(id) {
		return nil, fmt.Errorf("%w: dead letter %q of %q (not a stream entry ID)", broker.ErrNotFound, id, topic)
	}
	msgs, err := b.rdb.XRange(ctx, k.dlq, id, id).Result()
	if err != nil {
		return nil, b.wrap("dead letter "+id, err)
	}
	if len(msgs) == 0 {
		return nil, fmt.Errorf("%w: dead letter %q of %q", broker.ErrNotFound, id, topic)
	}
	r := k.receipt(msgs[0].ID)
	return &broker.DeadLetter{ID: r, Job: decodeEntry(job.DeadLetterTopic(topic), msgs[0].ID, r, msgs[0].Values).job}, nil
}

// snapshotIDs returns the IDs of every entry of stream, oldest first.
func (b *Broker) snapshotIDs(ctx context.Context, stream string) ([]string, error) {
	var ids []string
	start := "-"
	for {
		msgs, err := b.rdb.XRangeN(ctx, stream, start, "+", snapshotBatch).Result()
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			ids = append(ids, m.ID)
		}
		if len(msgs) < snapshotBatch {
			return ids, nil
		}
		start = "(" + msgs[len(msgs)-1].ID
	}
}

// ReplayDeadLetters moves dead letters of topic back to topic's stream with
// attempt 1 and no failure fields (payload, ID, headers and enqueued_at are
// kept), each in one atomic script step, by batches of 100. nil ids means
// every dead letter present when the call starts (a snapshot, so jobs that
// fail again during the replay are not replayed twice). IDs not found are
// skipped. It returns how many moved.
//
// A dead letter of a unique job takes its key again (a new claim, see
// unique.go) in the same step; when another job holds the key, that dead
// letter stays where it is and the error, joined over such dead letters,
// matches broker.ErrDuplicate and holds a *broker.DuplicateError naming
// the holder. The others are replayed.
func (b *Broker) ReplayDeadLetters(ctx context.Context, topic string, ids []string) (int, error) {
	if err := b.check(ctx); err != nil {
		return 0, err
	}
	if topic == "" {
		return 0, fmt.Errorf("%w: empty topic", broker.ErrInvalidMessage)
	}
	if parts, err := b.partsOf(ctx, topic); err != nil || parts != nil {
		if err != nil {
			return 0, err
		}
		return b.eachPart(topic, parts, ids, func(k keys, ids []string) (int, error) {
			return b.replayKeys(ctx, topic, k, ids)
		})
	}
	return b.replayKeys(ctx, topic, b.keysFor(topic), ids)
}

// replayKeys is ReplayDeadLetters of the dead-letter stream of k (entry
// IDs).
func (b *Broker) replayKeys(ctx context.Context, topic string, k keys, ids []string) (int, error) {
	if ids == nil {
		var err error
		if ids, err = b.snapshotIDs(ctx, k.dlq); err != nil {
			return 0, b.wrap("replay dead letters of "+topic, err)
		}
	}
	ids = slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return !validEntryID(id) })
	moved := 0
	var dups []error
	for batch := range slices.Chunk(ids, replayBatch) {
		uniq, err := b.uniqueKeysOf(ctx, k.dlq, batch)
		if err != nil {
			return moved, b.wrap("replay dead letters of "+topic, err)
		}
		ks := []string{k.dlq, k.stream}
		index := map[string]int{} // claim key → its index in KEYS
		args := make([]any, 0, 3+2*len(batch))
		args = append(args, b.o.Group, b.o.UniqueClaimTTL.Milliseconds(), k.receipt(""))
		for _, id := range batch {
			i := 0
			if key, ok := uniq[id]; ok {
				claim := k.unique + key
				if i = index[claim]; i == 0 {
					ks = append(ks, claim)
					i = len(ks)
					index[claim] = i
				}
			}
			args = append(args, id, i)
		}
		res, err := replayScript.Run(ctx, b.rdb, ks, args...).Slice()
		if err != nil {
			return moved, b.wrap("replay dead letters of "+topic, err)
		}
		if len(res) != 2 {
			return moved, b.wrap("replay dead letters of "+topic, errors.New("unexpected script reply"))
		}
		n, _ := res[0].(int64)
		moved += int(n)
		refused, _ := res[1].([]any)
		dups = append(dups, duplicates(topic, refused, uniq)...)
	}
	if moved > 0 {
		if err := b.registerTopics(ctx, []keys{k}); err != nil {
			return moved, err
		}
	}
	return moved, errors.Join(dups...)
}

// PurgeDeadLetters deletes dead letters of topic (XACK in the group, for a
// consumer of the dead-letter topic that holds one, and XDEL), pipelined by
// batches of 500. nil ids means every dead letter present when the call
// starts. It returns how many were deleted.
func (b *Broker) PurgeDeadLetters(ctx context.Context, topic string, ids []string) (int, error) {
	if err := b.check(ctx); err != nil {
		return 0, err
	}
	if parts, err := b.partsOf(ctx, topic); err != nil || parts != nil {
		if err != nil {
			return 0, err
		}
		return b.eachPart(topic, parts, ids, func(k keys, ids []string) (int, error) {
			return b.purgeKeys(ctx, topic, k, ids)
		})
	}
	return b.purgeKeys(ctx, topic, b.keysFor(topic), ids)
}

// purgeKeys is PurgeDeadLetters of the dead-letter stream of k (entry
// IDs).
func (b *Broker) purgeKeys(ctx context.Context, topic string, k keys, ids []string) (int, error) {
	if ids == nil {
		var err error
		if ids, err = b.snapshotIDs(ctx, k.dlq); err != nil {
			return 0, b.wrap("purge dead letters of "+topic, err)
		}
	}
	ids = slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return !validEntryID(id) })
	deleted := 0
	for batch := range slices.Chunk(ids, purgeBatch) {
		pipe := b.rdb.Pipeline()
		pipe.XAck(ctx, k.dlq, b.o.Group, batch...)
		del := pipe.XDel(ctx, k.dlq, batch...)
		if _, err := pipe.Exec(ctx); err != nil && !isNoGroup(err) {
			return deleted, b.wrap("purge dead letters of "+topic, err)
		}
		deleted += int(del.Val())
	}
	return deleted, nil
}

// Trim removes old entries of topic's stream, never an entry still pending
// in any group nor anything newer than the oldest pending entry (one atomic
// script: the oldest pending ID comes from XPENDING of each group). MaxLen
// keeps the newest MaxLen entries; OlderThan removes entries added to the
// stream (by their entry ID's time, against Options.Now) longer ago.
//
// Settled jobs are deleted, so the entries left are live jobs. Unless
// opts.IncludeUnread is set, Trim also keeps every entry a group has not
// been delivered yet (newer than the group's last-delivered-id in XINFO
// GROUPS) and anything newer, and removes nothing from a stream without a
// consumer group. It returns how many entries it removed; [Broker.TrimDryRun]
// says how many it would remove.
func (b *Broker) Trim(ctx context.Context, topic string, opts broker.TrimOptions) (int64, error) {
	return b.trim(ctx, "trim", topic, opts, false)
}

// TrimDryRun returns how many entries [Broker.Trim] with opts would remove
// from topic's stream now, removing nothing: it runs Trim's script in a
// count-only mode, so the count is exact at that moment (jobs published,
// read or settled afterwards change what a later Trim removes). Counting an
// OlderThan trim reads the entries on the shorter side of the cut, so on a
// long stream it costs more than the trim itself.
func (b *Broker) TrimDryRun(ctx context.Context, topic string, opts broker.TrimOptions) (int64, error) {
	return b.trim(ctx, "trim dry run", topic, opts, true)
}

func (b *Broker) trim(ctx context.Context, op, topic string, opts broker.TrimOptions, dry bool) (int64, error) {
	if err := b.check(ctx); err != nil {
		return 0, err
	}
	var mode, arg string
	switch {
	case opts.MaxLen > 0 && opts.OlderThan == 0:
		mode, arg = "maxlen", strconv.FormatInt(opts.MaxLen, 10)
	case opts.OlderThan > 0 && opts.MaxLen == 0:
		cut := b.o.Now().Add(-opts.OlderThan).UnixMilli()
		mode, arg = "minid", strconv.FormatInt(max(cut, 0), 10)+"-0"
	default:
		return 0, fmt.Errorf("conveyor/redis: %s: set exactly one of TrimOptions.MaxLen and TrimOptions.OlderThan, positive", op)
	}
	flag := func(on bool) string {
		if on {
			return "1"
		}
		return "0"
	}
	parts, err := b.allKeys(ctx, topic)
	if err != nil {
		return 0, err
	}
	// A partitioned topic is trimmed partition by partition: MaxLen and
	// OlderThan apply to each partition's stream.
	var total int64
	for _, k := range parts {
		n, err := trimScript.Run(ctx, b.rdb, []string{k.stream}, mode, arg, flag(opts.IncludeUnread), flag(dry)).Int64()
		if err != nil {
			return total, b.wrap(op+" "+topic, err)
		}
		total += n
	}
	return total, nil
}

// Check reports whether Redis answers PING and the consumer group exists on
// every stream this broker has read from. A missing group is recreated by the
// next Fetch; Check reports it meanwhile.
func (b *Broker) Check(ctx context.Context) error {
	if err := b.check(ctx); err != nil {
		return err
	}
	if err := b.rdb.Ping(ctx).Err(); err != nil {
		if b.closed.Load() {
			return broker.ErrClosed
		}
		return connError("redis", err)
	}
	var streams []string
	b.groups.Range(func(k, _ any) bool {
		streams = append(streams, k.(string))
		return true
	})
	if len(streams) == 0 {
		return nil
	}
	slices.Sort(streams)
	pipe := b.rdb.Pipeline()
	cmds := make([]*goredis.XInfoGroupsCmd, len(streams))
	for i, s := range streams {
		cmds[i] = pipe.XInfoGroups(ctx, s)
	}
	_, _ = pipe.Exec(ctx)
	var missing []string
	for i, c := range cmds {
		gs, err := c.Result()
		if err != nil && !isNoSuchKey(err) {
			return b.wrap("health check", err)
		}
		if !slices.ContainsFunc(gs, func(g goredis.XInfoGroup) bool { return g.Name == b.o.Group }) {
			missing = append(missing, streams[i])
		}
	}
	if len(missing) > 0 {
		b.forgetGroups(missing...)
		return fmt.Errorf("conveyor/redis: consumer group %q is missing on %s (Redis restarted without persistence, or the keys were deleted); the next fetch recreates it",
			b.o.Group, strings.Join(missing, ", "))
	}
	return nil
}

// ServerInfo describes the Redis server a Broker talks to.
type ServerInfo struct {
	// Version is the server's version, such as "7.0.15".
	Version string `json:"version"`
	// Mode is "standalone", "cluster" or "sentinel".
	Mode string `json:"mode"`
	// Role is "master" or "replica".
	Role string `json:"role"`
}

// ServerInfo returns the version, mode and role of the server (of one node
// of a Cluster) from HELLO without arguments, which changes nothing on the
// connection. Every client that connects may run HELLO, so this needs no ACL
// permission beyond those a producer needs (INFO would).
func (b *Broker) ServerInfo(ctx context.Context) (ServerInfo, error) {
	if err := b.check(ctx); err != nil {
		return ServerInfo{}, err
	}
	res, err := b.rdb.Do(ctx, "HELLO").Result()
	if err != nil {
		return ServerInfo{}, b.wrap("server info", err)
	}
	fields := map[string]string{}
	switch r := res.(type) {
	case map[any]any: // RESP3
		for k, v := range r {
			ks, _ := k.(string)
			vs, _ := v.(string)
			fields[ks] = vs
		}
	case []any: // RESP2: name, value, …
		for i := 0; i+1 < len(r); i += 2 {
			ks, _ := r[i].(string)
			vs, _ := r[i+1].(string)
			fields[ks] = vs
		}
	}
	if fields["version"] == "" {
		return ServerInfo{}, b.wrap("server info", fmt.Errorf("HELLO reply %v has no version", res))
	}
	return ServerInfo{Version: fields["version"], Mode: fields["mode"], Role: fields["role"]}, nil
}

var (
	_ broker.PendingLister  = (*Broker)(nil)
	_ broker.DelayedLister  = (*Broker)(nil)
	_ broker.DelayedDeleter = (*Broker)(nil)
)

// PendingEntries lists up to limit (default [broker.DefaultListLimit])
// pending entries of topic in the broker's group, oldest first (XPENDING
// with the extended form). Entries whose lease expired and that no consumer
// has claimed yet are listed too.
func (b *Broker) PendingEntries(ctx context.Context, topic string, limit int) ([]broker.PendingEntry, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = broker.DefaultListLimit
	}
	parts, err := b.allKeys(ctx, topic)
	if err != nil {
		return nil, err
	}
	out := []broker.PendingEntry{}
	for _, k := range parts {
		ps, err := b.rdb.XPendingExt(ctx, &goredis.XPendingExtArgs{
			Stream: k.stream, Group: b.o.Group, Start: "-", End: "+", Count: int64(limit),
		}).Result()
		if err != nil {
			if isNoGroup(err) {
				continue
			}
			return nil, b.wrap("pending entries of "+topic, err)
		}
		for _, p := range ps {
			out = append(out, broker.PendingEntry{ID: k.receipt(p.ID), Consumer: p.Consumer, Idle: p.Idle, Deliveries: p.RetryCount})
		}
	}
	if len(parts) > 1 {
		// Oldest entry first across the partitions.
		slices.SortStableFunc(out, func(x, y broker.PendingEntry) int { return compareEntryIDs(x.ID, y.ID) })
		out = out[:min(len(out), limit)]
	}
	return out, nil
}

// DelayedJobs lists up to limit (default [broker.DefaultListLimit]) delayed
// jobs of topic, soonest due first (jobs due at the same millisecond in the
// order of their encoded members).
func (b *Broker) DelayedJobs(ctx context.Context, topic string, limit int) ([]broker.DelayedJob, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = broker.DefaultListLimit
	}
	parts, err := b.allKeys(ctx, topic)
	if err != nil {
		return nil, err
	}
	var zs []goredis.Z
	for _, k := range parts {
		got, err := b.rdb.ZRangeWithScores(ctx, k.delayed, 0, int64(limit-1)).Result()
		if err != nil {
			return nil, b.wrap("delayed jobs of "+topic, err)
		}
		zs = append(zs, got...)
	}
	if len(parts) > 1 {
		slices.SortStableFunc(zs, func(x, y goredis.Z) int { return cmp.Compare(x.Score, y.Score) })
		zs = zs[:min(len(zs), limit)]
	}
	out := make([]broker.DelayedJob, 0, len(zs))
	for _, z := range zs {
		member, _ := z.Member.(string)
		j, values := decodeMemberValues(topic, member)
		dj := broker.DelayedJob{Job: j, Due: time.UnixMilli(int64(z.Score))}
		if ms, ok := values[fieldSnoozedAt].(string); ok {
			at, _ := strconv.ParseInt(ms, 10, 64)
			cause, _ := values[fieldSnoozeCause].(string)
			dj.Snooze = &broker.Snooze{Cause: cause, At: time.UnixMilli(at)}
		}
		out = append(out, dj)
	}
	return out, nil
}

// decodeMemberJob decodes a delayed-set member; one that does not decode is
// returned as a job whose payload is the raw member.
func decodeMemberJob(topic, member string) job.Job {
	j, _ := decodeMemberValues(topic, member)
	return j
}

// decodeMemberValues is decodeMemberJob that also returns the member's
// fields by name (nil when it does not decode).
func decodeMemberValues(topic, member string) (job.Job, map[string]any) {
	fields, err := decodeMember(member)
	if err != nil {
		return job.Job{Topic: topic, Payload: []byte(member), Attempt: 1}, nil
	}
	values := make(map[string]any, len(fields)/2)
	for i := 0; i+1 < len(fields); i += 2 {
		values[fields[i]] = fields[i+1]
	}
	return decodeEntry(topic, "", "", values).job, values
}

// DeleteDelayed removes the delayed job of topic with job ID id, or returns
// an error wrapping broker.ErrNotFound. It scans the delayed set. The claim
// of a unique job's key is released.
func (b *Broker) DeleteDelayed(ctx context.Context, topic, id string) error {
	if err := b.check(ctx); err != nil {
		return err
	}
	parts, err := b.allKeys(ctx, topic)
	if err != nil {
		return err
	}
	for _, k := range parts {
		if err := b.deleteDelayedKeys(ctx, topic, k, id); !errors.Is(err, broker.ErrNotFound) {
			return err
		}
	}
	return fmt.Errorf("%w: delayed job %q of %q", broker.ErrNotFound, id, topic)
}

// deleteDelayedKeys is DeleteDelayed in the delayed set of k.
func (b *Broker) deleteDelayedKeys(ctx context.Context, topic string, k keys, id string) error {
	for {
		m, found, _, err := b.findDelayed(ctx, k, id, 0)
		if err != nil {
			return b.wrap("delete delayed job", err)
		}
		if !found {
			return fmt.Errorf("%w: delayed job %q of %q", broker.ErrNotFound, id, topic)
		}
		n, err := b.rdb.ZRem(ctx, k.delayed, m).Result()
		if err != nil {
			return b.wrap("delete delayed job", err)
		}
		if n == 1 {
			if key := decodeMemberJob(topic, m).UniqueKey; key != "" {
				if err := releaseUniqueScript.Run(ctx, b.rdb, []string{k.unique + key}, id).Err(); err != nil {
					return b.wrap("delete delayed job: release its unique key", err)
				}
			}
			return nil
		}
	}
}
