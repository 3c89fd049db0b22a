package redis

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/job"
)

// MaxHeaders is the most headers a published message may carry: the Lua
// scripts that move a job pass its fields as arguments, and Lua unpacks at
// most a few thousand.
const MaxHeaders = 1000

// Publish enqueues m with XADD (or ZADD to the delayed set when m is due
// later) and returns its ID, generated (a UUIDv7) when m.ID is empty.
func (b *Broker) Publish(ctx context.Context, m broker.Message) (string, error) {
	ids, err := b.PublishBatch(ctx, []broker.Message{m})
	if err != nil {
		return "", err
	}
	return ids[0], nil
}

// PublishBatch enqueues ms in one pipelined round trip (one per Cluster
// node) and returns their IDs in order. Every message is validated before
// anything is sent; on a Redis error some messages may have been enqueued.
func (b *Broker) PublishBatch(ctx context.Context, ms []broker.Message) ([]string, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	if len(ms) == 0 {
		return []string{}, nil
	}
	now := b.o.Now()
	ids := make([]string, len(ms))
	for i := range ms {
		if ms[i].Topic == "" {
			return nil, fmt.Errorf("%w: message %d has an empty topic", broker.ErrInvalidMessage, i)
		}
		if len(ms[i].Headers) > MaxHeaders {
			return nil, fmt.Errorf("%w: message %d has %d headers, more than %d", broker.ErrInvalidMessage, i, len(ms[i].Headers), MaxHeaders)
		}
		ids[i] = ms[i].ID
		if ids[i] == "" {
			u, err := uuid.NewV7()
			if err != nil {
				return nil, fmt.Errorf("conveyor/redis: generate job ID: %w", err)
			}
			ids[i] = u.String()
		}
	}
	if len(ms) == 1 {
		if _, ok := b.topics.Load(b.keysFor(ms[0].Topic).base); ok {
			// The common case needs no pipeline: one command.
			if err := b.add(ctx, b.rdb, &ms[0], ids[0], now).Err(); err != nil {
				return nil, b.wrap("publish", err)
			}
			return ids, nil
		}
	}
	pipe := b.rdb.Pipeline()
	var newTopics []string
	for i := range ms {
		k := b.keysFor(ms[i].Topic)
		b.add(ctx, pipe, &ms[i], ids[i], now)
		if _, ok := b.topics.Load(k.base); !ok {
			newTopics = append(newTopics, k.base)
		}
	}
	if len(newTopics) > 0 {
		members := make([]any, len(newTopics))
		for i, t := range newTopics {
			members[i] = t
		}
		pipe.SAdd(ctx, b.registryKey(), members...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, b.wrap("publish", err)
	}
	for _, t := range newTopics {
		b.topics.Store(t, struct{}{})
	}
	return ids, nil
}

// add queues (or runs) the command storing m: XADD to its stream, or ZADD to
// its delayed set when it is due later.
func (b *Broker) add(ctx context.Context, c goredis.Cmdable, m *broker.Message, id string, now time.Time) goredis.Cmder {
	k := b.keysFor(m.Topic)
	j := job.Job{ID: id, Payload: m.Payload, Headers: m.Headers, EnqueuedAt: now}
	fields := encodeFields(&j, 1, nil)
	if due := m.Due(now); due.After(now) {
		return c.ZAdd(ctx, k.delayed, goredis.Z{Score: float64(due.UnixMilli()), Member: encodeMember(fields)})
	}
	return c.XAdd(ctx, &goredis.XAddArgs{Stream: k.stream, Values: fields})
}
