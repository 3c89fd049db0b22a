package redis

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/broker"
)

// Partitioned topics.
//
// A topic has one layout of partitions at a time: its partition count N,
// kept in the registry hash <ns>:partitions (field <topic> = N). Layout 1,
// the default, is the topic's historical keys <ns>:{T}:stream and so on.
// Partition i of a layout of N > 1 partitions has its own keys under the
// hash tag {T#i/N} (or {T#i/N.s}, see partitionTag): <ns>:{T#i/N}:stream,
// :delayed, :dlq, :paused and :unique:<key>, in one slot chosen in the
// i-th N-th of the slot space, so that the partitions spread evenly over
// a Cluster's masters.
//
// Changing N starts a new layout: the old one is retiring, recorded in the
// registry field "{retiring}<topic>" as "<N>:<unix ms>" words. Workers
// read, recover and promote every partition of the current and retiring
// layouts; a retiring layout is dropped from the registry once, at least
// drainGrace after it retired, each of its partitions has an empty
// stream, delayed set and dead-letter stream and nothing pending (checked
// per partition by one script, drainedScript). Its dead letters keep it
// registered until they are replayed (into the current layout) or purged.

// partitionRefresh bounds how old the partition count a broker uses may
// be: it reads the registry again when its copy is older.
const partitionRefresh = time.Second

// drainGrace is how long after a layout retired its partitions may still
// receive jobs from producers that had not seen the change yet (a copy of
// the registry is at most partitionRefresh old); a layout is dropped only
// after it. A variable so that tests can shorten it.
var drainGrace = 5 * time.Second

// clusterSlots is the number of Redis Cluster hash slots.
const clusterSlots = 16384

// crc16 is the CRC16 (XMODEM) Redis Cluster hashes keys with.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// partitionTag returns the hash tag of partition i of a layout of n
// partitions of base: "<base>#<i>/<n>", followed by ".<s>" for the
// smallest s > 0 that puts it in slot range [i*16384/n, (i+1)*16384/n)
// when the bare tag is not already there. Every process computes the same
// tag, and a Cluster whose masters hold equal slot ranges holds equal
// numbers of partitions.
func partitionTag(base string, n, i int) string {
	prefix := base + "#" + strconv.Itoa(i) + "/" + strconv.Itoa(n)
	if t, ok := tagCache.Load(prefix); ok {
		return t.(string)
	}
	t := findTag(prefix, n, i)
	if tagCacheN.Add(1) <= maxKeyCache {
		tagCache.Store(prefix, t)
	}
	return t
}

// tagCache holds the tags partitionTag found, by "<base>#<i>/<n>".
var (
	tagCache  sync.Map
	tagCacheN atomic.Int64
)

// findTag is partitionTag of the tag prefix of partition i of n.
func findTag(prefix string, n, i int) string {
	lo, hi := i*clusterSlots/n, (i+1)*clusterSlots/n
	for s := 0; s < 1<<22; s++ {
		tag := prefix
		if s > 0 {
			tag += "." + strconv.Itoa(s)
		}
		if slot := int(crc16(tag)) % clusterSlots; slot >= lo && slot < hi {
			return tag
		}
	}
	return prefix
}

// tagBase returns the base topic of a hash tag: base for a partition's tag
// "<base>#<i>/<n>[.<s>]" (one that partitionTag gives), the tag itself
// otherwise.
func tagBase(tag string) string {
	h := strings.LastIndexByte(tag, '#')
	if h < 0 {
		return tag
	}
	is, rest, ok := strings.Cut(tag[h+1:], "/")
	if !ok {
		return tag
	}
	ns, _, _ := strings.Cut(rest, ".")
	i, err1 := strconv.Atoi(is)
	n, err2 := strconv.Atoi(ns)
	if err1 != nil || err2 != nil || n < 2 || n > broker.MaxPartitions || i < 0 || i >= n || partitionTag(tag[:h], n, i) != tag {
		return tag
	}
	return tag[:h]
}

// partKeys returns the keys of partition i of topic's layout of n
// partitions (n = 1: the topic's historical keys). Hot (every Fetch and
// settle of a partitioned topic): a cached copy is found without
// allocating.
func (b *Broker) partKeys(topic string, n, i int) keys {
	if n <= 1 {
		return b.keysFor(topic)
	}
	id := partID{topic, n, i}
	if k, ok := b.partCache.load(id); ok {
		return k
	}
	k := b.makeKeysIn(topic, n, i)
	b.partCache.store(id, k)
	return k
}

// partID names a partition: its topic, layout and index.
type partID struct {
	topic string
	n, i  int
}

// partCache holds the keys of partitions (partKeys), up to maxKeyCache. Its
// reads take no lock: every Fetch and settle of a partitioned topic reads
// it, from several goroutines at once.
type partCache struct {
	m sync.Map // partID -> keys
	n atomic.Int64
}

func (c *partCache) load(id partID) (keys, bool) {
	k, ok := c.m.Load(id)
	if !ok {
		return keys{}, false
	}
	return k.(keys), true
}

func (c *partCache) store(id partID, k keys) {
	if c.n.Add(1) <= maxKeyCache {
		c.m.Store(id, k)
	}
}

// receipt returns the receipt of entry id of k's stream: the entry ID for
// a topic's historical keys, "<id>@<n>/<i>" for partition i of a layout
// of n.
func (k keys) receipt(id string) string {
	if k.n <= 1 {
		return id
	}
	return id + "@" + strconv.Itoa(k.n) + "/" + strconv.Itoa(k.part)
}

// dkeys returns the keys of the partition d was read from and the entry
// ID its receipt names.
func (b *Broker) dkeys(d *broker.Delivery) (keys, string) {
	return b.receiptKeys(d.Job.Topic, d.Receipt)
}

// receiptKeys returns the keys of the partition of topic that receipt
// names and its entry ID. A receipt that names no valid partition maps to
// the topic's historical keys, as it is (it then names no entry).
func (b *Broker) receiptKeys(topic, receipt string) (keys, string) {
	k, id, _ := b.parseReceipt(topic, receipt)
	return k, id
}

// parseReceipt is receiptKeys that also reports whether receipt names a
// partition of a layout of more than one.
func (b *Broker) parseReceipt(topic, receipt string) (keys, string, bool) {
	at := strings.LastIndexByte(receipt, '@')
	if at < 0 {
		return b.keysFor(topic), receipt, false
	}
	ns, is, ok := strings.Cut(receipt[at+1:], "/")
	n, err1 := strconv.Atoi(ns)
	i, err2 := strconv.Atoi(is)
	if !ok || err1 != nil || err2 != nil || n < 2 || n > broker.MaxPartitions || i < 0 || i >= n || !validEntryID(receipt[:at]) {
		return b.keysFor(topic), receipt, false
	}
	return b.partKeys(topic, n, i), receipt[:at], true
}

// partitionsKey is the registry of partition counts: a hash of base topic
// -> N, and "{retiring}" + base topic -> its retiring layouts.
func (b *Broker) partitionsKey() string { return b.o.Namespace + ":partitions" }

// retiringField is the registry field of base's retiring layouts.
func retiringField(base string) string { return "{retiring}" + base }

// layout is a topic's partition count and its retiring layouts, as read
// from the registry at some time.
type layout struct {
	n        int
	retiring []retired
	at       time.Time
}

// retired is a retiring layout: its partition count and when it retired
// (unix ms).
type retired struct {
	n     int
	since int64
}

// layoutCache holds the layouts read from the registry.
type layoutCache struct {
	mu sync.Mutex
	m  map[string]layout // base topic -> layout
}

// layoutOf returns base's layout, read from the registry when the copy
// held is older than partitionRefresh. When the registry cannot be read,
// a copy held is used (and the error logged); with none, the error is
// returned.
func (b *Broker) layoutOf(ctx context.Context, base string) (layout, error) {
	b.layouts.mu.Lock()
	l, ok := b.layouts.m[base]
	b.layouts.mu.Unlock()
	if ok && time.Since(l.at) < partitionRefresh {
		return l, nil
	}
	fresh, err := b.readLayout(ctx, base)
	if err != nil {
		if ok {
			b.log.Warn("conveyor/redis: could not read the partition registry; using the copy held", "topic", base, "err", err)
			return l, nil
		}
		return layout{}, err
	}
	b.layouts.mu.Lock()
	if b.layouts.m == nil || len(b.layouts.m) > maxKeyCache {
		b.layouts.m = map[string]layout{}
	}
	b.layouts.m[base] = fresh
	b.layouts.mu.Unlock()
	return fresh, nil
}

// forgetLayout drops the copy of base's layout, so the next use reads it.
func (b *Broker) forgetLayout(base string) {
	b.layouts.mu.Lock()
	delete(b.layouts.m, base)
	b.layouts.mu.Unlock()
}

// readLayout reads base's layout from the registry.
func (b *Broker) readLayout(ctx context.Context, base string) (layout, error) {
	vs, err := b.rdb.HMGet(ctx, b.partitionsKey(), base, retiringField(base)).Result()
	if err != nil && isNoPerm(err) {
		// A Redis user of a least-privilege ACL from before partitioned
		// topics: its topics are taken as unpartitioned, as they were,
		// and the missing permission is logged.
		if !b.registryDenied.Swap(true) {
			b.log.Error("conveyor/redis: the Redis user may not read the partition registry (HMGET); every topic is taken as having one partition, so the jobs of partitioned topics are neither published to nor fetched from their partitions by this process: grant +hmget (and +hget +hset +hdel to change partition counts)",
				"key", b.partitionsKey(), "err", err)
		}
		return layout{n: 1, at: time.Now()}, nil
	}
	if err != nil {
		return layout{}, b.wrap("read partition registry", err)
	}
	l := layout{n: 1, at: time.Now()}
	if s, ok := vs[0].(string); ok {
		if n, err := strconv.Atoi(s); err == nil && n >= 1 && n <= broker.MaxPartitions {
			l.n = n
		}
	}
	if s, ok := vs[1].(string); ok {
		l.retiring = parseRetiring(s)
	}
	return l, nil
}

// parseRetiring reads a "{retiring}" registry value: "<n>:<ms>" words.
func parseRetiring(s string) []retired {
	var out []retired
	for _, w := range strings.Fields(s) {
		ns, ms, _ := strings.Cut(w, ":")
		n, err := strconv.Atoi(ns)
		if err != nil || n < 1 || n > broker.MaxPartitions {
			continue
		}
		since, _ := strconv.ParseInt(ms, 10, 64)
		out = append(out, retired{n: n, since: since})
	}
	return out
}

// counts returns the partition counts of l's layouts, current first,
// without duplicates.
func (l layout) counts() []int {
	out := []int{l.n}
	for _, r := range l.retiring {
		dup := false
		for _, n := range out {
			dup = dup || n == r.n
		}
		if !dup {
			out = append(out, r.n)
		}
	}
	return out
}

// allKeys returns the keys of every partition of topic, current layout
// first, then the retiring ones.
func (b *Broker) allKeys(ctx context.Context, topic string) ([]keys, error) {
	base := b.keysFor(topic).base
	l, err := b.layoutOf(ctx, base)
	if err != nil {
		return nil, err
	}
	if l.n == 1 && len(l.retiring) == 0 {
		return []keys{b.keysFor(topic)}, nil
	}
	size := 0
	for _, n := range l.counts() {
		size += n
	}
	out := make([]keys, 0, size)
	for _, n := range l.counts() {
		for i := range n {
			out = append(out, b.partKeys(topic, n, i))
		}
	}
	return out, nil
}

// pubKeys returns the keys of the partition m is published to: for a
// topic of N > 1 partitions, broker.PartitionFor(m.Key, N) when m has a
// Key, else PartitionFor(m.UniqueKey, N) when it is unique (so that
// duplicates meet the claim in its slot), else the next partition in turn.
func (b *Broker) pubKeys(ctx context.Context, m *broker.Message) (keys, error) {
	k := b.keysFor(m.Topic)
	l, err := b.layoutOf(ctx, k.base)
	if err != nil {
		return keys{}, err
	}
	if l.n <= 1 {
		return k, nil
	}
	var i int
	switch {
	case m.Key != "":
		i = broker.PartitionFor(m.Key, l.n)
	case m.UniqueKey != "":
		i = broker.PartitionFor(m.UniqueKey, l.n)
	default:
		i = int(b.turn.Add(1) % uint64(l.n))
	}
	return b.partKeys(m.Topic, l.n, i), nil
}

var _ broker.Partitioner = (*Broker)(nil)

// SetPartitions sets topic's partition count to n (see
// [broker.Partitioner]) in the registry <ns>:partitions. Every broker of
// the namespace uses the new count within partitionRefresh (1s) for new
// jobs; jobs of the previous layout stay where they are, are fetched,
// settled, recovered and promoted there until it is drained, and are
// listed by the admin calls. A paused topic's new partitions are paused
// too. topic must be a base topic (not a dead-letter topic T.dlq): an
// error wrapping broker.ErrInvalidMessage otherwise, or for n out of 1 to
// broker.MaxPartitions.
func (b *Broker) SetPartitions(ctx context.Context, topic string, n int) error {
	if err := b.checkTopic(ctx, topic); err != nil {
		return err
	}
	if n < 1 || n > broker.MaxPartitions {
		return fmt.Errorf("%w: partition count %d of %q must be between 1 and %d", broker.ErrInvalidMessage, n, topic, broker.MaxPartitions)
	}
	if b.keysFor(topic).base != topic {
		return fmt.Errorf("%w: %q is a dead-letter topic: its partitions are those of its topic", broker.ErrInvalidMessage, topic)
	}
	paused, err := b.Paused(ctx, topic)
	if err != nil {
		return err
	}
	now := b.o.Now().UnixMilli()
	err = setPartitionsScript.Run(ctx, b.rdb, []string{b.partitionsKey()}, topic, n, now).Err()
	b.forgetLayout(topic)
	if err != nil {
		return b.wrap("set partitions of "+topic, err)
	}
	if paused {
		return b.Pause(ctx, topic)
	}
	return nil
}

// Partitions returns topic's partition count, read from the registry: 1
// for a topic never partitioned. A dead-letter topic T.dlq has T's count.
func (b *Broker) Partitions(ctx context.Context, topic string) (int, error) {
	if err := b.checkTopic(ctx, topic); err != nil {
		return 0, err
	}
	l, err := b.readLayout(ctx, b.keysFor(topic).base)
	if err != nil {
		return 0, err
	}
	return l.n, nil
}

// setPartitionsScript sets a topic's partition count and records the
// layout it replaces as retiring.
//
// KEYS[1] the partition registry hash
// ARGV[1] base topic; ARGV[2] new count; ARGV[3] now (unix ms)
// Returns 1 when the count changed, 0 when it already was ARGV[2].
var setPartitionsScript = newScript("set-partitions", `
local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '1')
local n = tonumber(ARGV[2])
if cur == n then return 0 end
local rf = '{retiring}' .. ARGV[1]
local out = {}
for w in string.gmatch(redis.call('HGET', KEYS[1], rf) or '', '%S+') do
  local wn = tonumber(string.match(w, '^(%d+)'))
  if wn ~= n and wn ~= cur then table.insert(out, w) end
end
table.insert(out, cur .. ':' .. ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], n, rf, table.concat(out, ' '))
return 1
`)

// dropRetiredScript removes a retiring layout from the registry.
//
// KEYS[1] the partition registry hash
// ARGV[1] base topic; ARGV[2] the layout's word ("<n>:<ms>")
// Returns 1 when it was removed, 0 when it was not listed.
var dropRetiredScript = newScript("drop-retired", `
local rf = '{retiring}' .. ARGV[1]
local out, found = {}, 0
for w in string.gmatch(redis.call('HGET', KEYS[1], rf) or '', '%S+') do
  if w == ARGV[2] then found = 1 else table.insert(out, w) end
end
if found == 0 then return 0 end
if #out == 0 then redis.call('HDEL', KEYS[1], rf) else redis.call('HSET', KEYS[1], rf, table.concat(out, ' ')) end
return 1
`)

// drainedScript reports whether a partition is drained: nothing in its
// stream, delayed set or dead-letter stream, nothing pending.
//
// KEYS[1] stream; KEYS[2] delayed set; KEYS[3] dead-letter stream
// ARGV[1] consumer group
// Returns 1 when drained, else 0.
var drainedScript = newScript("drained", `
if redis.call('XLEN', KEYS[1]) > 0 or redis.call('ZCARD', KEYS[2]) > 0 or redis.call('XLEN', KEYS[3]) > 0 then return 0 end
local ok, p = pcall(redis.call, 'XPENDING', KEYS[1], ARGV[1])
if ok and tonumber(p[1]) > 0 then return 0 end
return 1
`)

// drainRetired drops from the registry the retiring layouts of the base
// topics of ks that are drained (see drainedScript), at most once per
// ClaimInterval per topic, and at least drainGrace after they retired.
func (b *Broker) drainRetired(ctx context.Context, ks []keys) {
	now := time.Now()
	var bases []string
	b.mu.Lock()
	for _, k := range ks {
		if k.topic != k.base || now.Sub(b.lastDrain[k.base]) < b.o.ClaimInterval {
			continue
		}
		if b.lastDrain == nil || len(b.lastDrain) > maxKeyCache {
			b.lastDrain = map[string]time.Time{}
		}
		b.lastDrain[k.base] = now
		bases = append(bases, k.base)
	}
	b.mu.Unlock()
	for _, base := range bases {
		l, err := b.layoutOf(ctx, base)
		if err != nil {
			continue
		}
		for _, r := range l.retiring {
			if r.n == l.n || b.o.Now().UnixMilli()-r.since < drainGrace.Milliseconds() {
				continue
			}
			if err := b.dropIfDrained(ctx, base, l.n, r); err != nil {
				b.log.Warn("conveyor/redis: check a retiring partition layout", "topic", base, "partitions", r.n, "err", err)
			}
		}
	}
}

// dropIfDrained drops layout r of base from the registry when every one
// of its partitions is drained.
func (b *Broker) dropIfDrained(ctx context.Context, base string, current int, r retired) error {
	calls := make([]scriptCall, r.n)
	for i := range r.n {
		k := b.partKeys(base, r.n, i)
		calls[i] = scriptCall{drainedScript, []string{k.stream, k.delayed, k.dlq}, []any{b.o.Group}}
	}
	cmds, err := b.runScripts(ctx, calls)
	if err != nil {
		return err
	}
	for _, c := range cmds {
		if v, err := c.Int64(); err != nil || v != 1 {
			return err
		}
	}
	word := strconv.Itoa(r.n) + ":" + strconv.FormatInt(r.since, 10)
	dropped, err := dropRetiredScript.Run(ctx, b.rdb, []string{b.partitionsKey()}, base, word).Int64()
	if err != nil {
		return err
	}
	b.forgetLayout(base)
	if dropped == 1 {
		b.log.Info("conveyor/redis: retiring partition layout drained and dropped", "topic", base, "partitions", r.n, "current", current)
	}
	return nil
}

// nodeOf returns the address of the master holding key on Redis Cluster,
// "" on a single Redis.
func (b *Broker) nodeOf(ctx context.Context, key string) string {
	cc, ok := b.rdb.(*goredis.ClusterClient)
	if !ok {
		return ""
	}
	c, err := cc.MasterForKey(ctx, key)
	if err != nil {
		return ""
	}
	return c.Options().Addr
}
