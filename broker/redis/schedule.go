package redis

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/broker"
)

var _ broker.TickPublisher = (*Broker)(nil)

// Schedule state lives in one hash per topic, <ns>:{T}:schedule (for a
// dead-letter topic, its stream key + ":schedule"), in the topic's slot, so
// the claim of a tick and its XADD run in one script. Its fields, per entry
// name N:
//
//	entry:N       the registered entry, JSON (broker.ScheduleEntry)
//	registered:N  when it was last registered, unix ms
//	last:N        the newest tick fired, unix ms
//	id:N          the job ID of that tick
//	fired:N       when that tick's job was enqueued, unix ms
//
// The set <ns>:schedules lists the hashes, for Schedules.
const (
	fieldSchedEntry      = "entry:"
	fieldSchedRegistered = "registered:"
	fieldSchedLast       = "last:"
	fieldSchedID         = "id:"
	fieldSchedFired      = "fired:"
)

// scheduleKey returns the schedule hash of k's topic.
func (b *Broker) scheduleKey(k keys) string {
	if k.topic == k.base {
		return strings.TrimSuffix(k.stream, ":stream") + ":schedule"
	}
	return k.stream + ":schedule"
}

// tickKeys returns the keys of the partition that schedule entry's ticks
// of topic go to, with its schedule hash: the topic's keys, or for a
// partitioned topic broker.PartitionFor(entry, N). A change of N moves the
// entry to a new hash, which has no last tick yet.
func (b *Broker) tickKeys(ctx context.Context, topic, entry string) (keys, error) {
	if err := ValidateTopic(topic); err != nil {
		return keys{}, err
	}
	k := b.keysFor(topic)
	l, err := b.layoutOf(ctx, k.base)
	if err != nil || l.n <= 1 {
		return k, err
	}
	return b.partKeys(topic, l.n, broker.PartitionFor(entry, l.n)), nil
}

// schedulesKey is the set of schedule hashes.
func (b *Broker) schedulesKey() string { return b.o.Namespace + ":schedules" }

// tickScript enqueues a schedule's tick unless a tick at or after it was
// enqueued, checking and advancing the entry's last tick in the same step.
//
// KEYS[1] the topic's schedule hash
// KEYS[2] the topic's stream
// ARGV[1] entry name
// ARGV[2] tick, unix ms
// ARGV[3] job ID
// ARGV[4] now, unix ms
// ARGV[5…] the stream entry's fields and values
//
// Returns {1, ARGV[3]} when it added the job; {0, ID of the last tick's
// job} when the entry's last tick is at or after ARGV[2] (nothing written).
var tickScript = newScript("tick", `
local last = redis.call('HGET', KEYS[1], 'last:' .. ARGV[1])
if last and tonumber(last) >= tonumber(ARGV[2]) then
  return {0, redis.call('HGET', KEYS[1], 'id:' .. ARGV[1]) or ''}
end
redis.call('XADD', KEYS[2], '*', unpack(ARGV, 5))
redis.call('HSET', KEYS[1], 'last:' .. ARGV[1], ARGV[2], 'id:' .. ARGV[1], ARGV[3], 'fired:' .. ARGV[1], ARGV[4])
return {1, ARGV[3]}
`)

// RegisterSchedule records e in its topic's schedule hash, adds the hash to
// the schedule set and the topic to the topic registry, and returns e's
// state with its last tick.
func (b *Broker) RegisterSchedule(ctx context.Context, e broker.ScheduleEntry) (broker.ScheduleState, error) {
	if err := b.scheduleCheck(ctx, e.Topic, e.Name); err != nil {
		return broker.ScheduleState{}, err
	}
	k, err := b.tickKeys(ctx, e.Topic, e.Name)
	if err != nil {
		return broker.ScheduleState{}, err
	}
	key := b.scheduleKey(k)
	meta, err := json.Marshal(e)
	if err != nil {
		return broker.ScheduleState{}, fmt.Errorf("conveyor/redis: encode schedule %q: %w", e.Name, err)
	}
	now := b.o.Now()
	pipe := b.rdb.Pipeline()
	pipe.HSet(ctx, key, fieldSchedEntry+e.Name, meta, fieldSchedRegistered+e.Name, now.UnixMilli())
	state := pipe.HMGet(ctx, key, fieldSchedLast+e.Name, fieldSchedID+e.Name, fieldSchedFired+e.Name)
	pipe.SAdd(ctx, b.schedulesKey(), key)
	if _, err := pipe.Exec(ctx); err != nil {
		return broker.ScheduleState{}, b.wrap("register schedule "+e.Name, err)
	}
	if err := b.registerTopics(ctx, []keys{k}); err != nil {
		return broker.ScheduleState{}, err
	}
	s := broker.ScheduleState{ScheduleEntry: e, RegisteredAt: now.Truncate(time.Millisecond)}
	v := state.Val()
	s.LastTick, s.LastJobID, s.LastFiredAt = msTime(v[0]), str(v[1]), msTime(v[2])
	return s, nil
}

// PublishTick enqueues m as entry's tick at tick, in one script with the
// claim on the tick; see [broker.TickPublisher]. The job is written like a
// job that Publish adds to the stream, with its ID.
func (b *Broker) PublishTick(ctx context.Context, entry string, tick time.Time, m broker.Message) (string, bool, error) {
	if err := b.scheduleCheck(ctx, m.Topic, entry); err != nil {
		return "", false, err
	}
	if err := ValidateTopic(m.Topic); err != nil {
		return "", false, err
	}
	if m.ID == "" {
		return "", false, fmt.Errorf("%w: the tick of schedule %q has no job ID", broker.ErrInvalidMessage, entry)
	}
	if err := m.CheckLimits(); err != nil {
		return "", false, err
	}
	if len(m.Headers) > MaxHeaders {
		return "", false, fmt.Errorf("%w: the tick of schedule %q has %d headers, more than %d", broker.ErrInvalidMessage, entry, len(m.Headers), MaxHeaders)
	}
	k, err := b.tickKeys(ctx, m.Topic, entry)
	if err != nil {
		return "", false, err
	}
	fields := xaddArgs(&m, m.ID, k.stream)[3:] // after "xadd", the stream and "*"
	args := make([]any, 0, 4+len(fields))
	args = append(args, entry, tick.UnixMilli(), m.ID, b.o.Now().UnixMilli())
	args = append(args, fields...)
	res, err := tickScript.Run(ctx, b.rdb, []string{b.scheduleKey(k), k.stream}, args...).Slice()
	if err != nil {
		return "", false, b.wrap("publish the tick of schedule "+entry, err)
	}
	if len(res) != 2 {
		return "", false, fmt.Errorf("conveyor/redis: tick script returned %v", res)
	}
	fired, _ := res[0].(int64)
	id, _ := res[1].(string)
	return id, fired == 1, nil
}

// Schedules lists the registered entries of every schedule hash in the
// schedule set, by name, then topic; the hashes are read in one pipelined
// round trip (one per Cluster node).
func (b *Broker) Schedules(ctx context.Context) ([]broker.ScheduleState, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	hashes, err := b.rdb.SMembers(ctx, b.schedulesKey()).Result()
	if err != nil {
		return nil, b.wrap("list schedules", err)
	}
	slices.Sort(hashes)
	pipe := b.rdb.Pipeline()
	cmds := make([]*goredis.MapStringStringCmd, len(hashes))
	for i, h := range hashes {
		cmds[i] = pipe.HGetAll(ctx, h)
	}
	if len(hashes) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, b.wrap("list schedules", err)
		}
	}
	var out []broker.ScheduleState
	for i, c := range cmds {
		h := c.Val()
		for f, meta := range h {
			name, ok := strings.CutPrefix(f, fieldSchedEntry)
			if !ok {
				continue
			}
			var s broker.ScheduleState
			if err := json.Unmarshal([]byte(meta), &s.ScheduleEntry); err != nil {
				b.log.Warn("conveyor/redis: unreadable schedule entry", "key", hashes[i], "entry", name, "err", err)
				continue
			}
			s.Name = name
			s.RegisteredAt = msTime(h[fieldSchedRegistered+name])
			s.LastTick = msTime(h[fieldSchedLast+name])
			s.LastJobID = h[fieldSchedID+name]
			s.LastFiredAt = msTime(h[fieldSchedFired+name])
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b broker.ScheduleState) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Topic, b.Topic))
	})
	return out, nil
}

// scheduleCheck returns the error of a schedule call on a closed broker,
// with an ended ctx, or for an empty topic or entry name.
func (b *Broker) scheduleCheck(ctx context.Context, topic, name string) error {
	if err := b.check(ctx); err != nil {
		return err
	}
	if topic == "" {
		return fmt.Errorf("%w: schedule %q has an empty topic", broker.ErrInvalidMessage, name)
	}
	if name == "" {
		return fmt.Errorf("%w: schedule with an empty name", broker.ErrInvalidMessage)
	}
	return nil
}

// msTime decodes a unix-ms value of a reply (a string, or nil when absent)
// as a UTC time; zero when absent or unreadable.
func msTime(v any) time.Time {
	s := str(v)
	if s == "" {
		return time.Time{}
	}
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// str returns v as a string: "" for nil.
func str(v any) string {
	s, _ := v.(string)
	return s
}
