package main

import (
	"context"
	"slices"
	"strings"
	"sync"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/redis"
)

// streamSuffix ends every topic's stream key: "<namespace>:{<topic>}:stream".
const streamSuffix = "}:stream"

// namespacesWith returns the namespaces other than own whose keys hold topic
// (every namespace holding any topic when topic is ""), by scanning the
// keyspace for stream keys. It answers the most common "my worker sees
// nothing" mistake: producer and worker with different REDIS_NAMESPACE. It
// returns nil for brokers that are not Redis.
func namespacesWith(ctx context.Context, b broker.Broker, own, topic string) []string {
	rb, ok := b.(*redis.Broker)
	if !ok {
		return nil
	}
	pattern := "*:{" + globEscape(topic) + streamSuffix
	if topic == "" {
		pattern = "*:{*" + streamSuffix
	}
	var (
		mu    sync.Mutex
		found = map[string]bool{}
	)
	scan := func(ctx context.Context, c goredis.UniversalClient) error {
		it := c.Scan(ctx, 0, pattern, 1000).Iterator()
		for it.Next(ctx) {
			key := it.Val()
			if i := strings.LastIndex(key, ":{"); i > 0 && strings.HasSuffix(key, streamSuffix) {
				mu.Lock()
				found[key[:i]] = true
				mu.Unlock()
			}
		}
		return it.Err()
	}
	switch c := rb.Client().(type) {
	case *goredis.ClusterClient:
		_ = c.ForEachMaster(ctx, func(ctx context.Context, m *goredis.Client) error { return scan(ctx, m) })
	default:
		_ = scan(ctx, c)
	}
	delete(found, own)
	out := make([]string, 0, len(found))
	for ns := range found {
		out = append(out, ns)
	}
	slices.Sort(out)
	return out
}

// globEscape escapes the characters SCAN MATCH treats as patterns.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// isEmpty reports whether info shows no trace of the topic: no jobs, no
// dead letters, no consumer group.
func isEmpty(info *broker.TopicInfo) bool {
	return info.Length == 0 && info.Delayed == 0 && info.DeadLetters == 0 && len(info.Groups) == 0 && !info.Paused
}
