package redis

import (
	"context"
	"fmt"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/broker"
)

// StreamCounters returns two lifetime counters of topic's stream, read with
// XINFO STREAM and XINFO GROUPS in one pipelined round trip: added, the
// number of entries ever added to the stream (entries-added: publishes,
// retries, snoozes, promotions and replays), and read, the number of entries
// ever delivered for the first time to the broker's consumer group
// (entries-read; recoveries of expired leases are not counted again). Both
// only grow, so rates come from the difference of two readings; the
// difference of read minus the change in pending entries is the number of
// deliveries settled in between.
//
// A topic with no stream yet reports zeros; a stream without the group
// reports read = 0. A partitioned topic reports the sums over its
// partitions, those of retiring layouts included (so the sums drop when a
// drained layout is dropped). It needs Redis 7.0 or newer.
func (b *Broker) StreamCounters(ctx context.Context, topic string) (added, read int64, err error) {
	if err := b.check(ctx); err != nil {
		return 0, 0, err
	}
	if topic == "" {
		return 0, 0, fmt.Errorf("%w: empty topic", broker.ErrInvalidMessage)
	}
	parts, err := b.allKeys(ctx, topic)
	if err != nil {
		return 0, 0, err
	}
	// A partitioned topic's counters are its partitions' added up.
	for _, k := range parts {
		a, r, err := b.streamCounters(ctx, topic, k)
		if err != nil {
			return 0, 0, err
		}
		added += a
		read += r
	}
	return added, read, nil
}

// streamCounters is StreamCounters of k's stream.
func (b *Broker) streamCounters(ctx context.Context, topic string, k keys) (added, read int64, err error) {
	pipe := b.rdb.Pipeline()
	stream := pipe.XInfoStream(ctx, k.stream)
	groups := pipe.XInfoGroups(ctx, k.stream)
	_, _ = pipe.Exec(ctx)
	st, err := stream.Result()
	if err != nil {
		if isNoSuchKey(err) || err == goredis.Nil {
			return 0, 0, nil
		}
		return 0, 0, b.wrap("stream counters of "+topic, err)
	}
	gs, err := groups.Result()
	if err != nil && !isNoSuchKey(err) {
		return 0, 0, b.wrap("stream counters of "+topic, err)
	}
	for _, g := range gs {
		if g.Name == b.o.Group {
			read = g.EntriesRead
		}
	}
	return st.EntriesAdded, read, nil
}
