package redis

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strconv"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/internal/share"
)

var (
	_ broker.PriorityFetcher = (*Broker)(nil)
	_ broker.Pauser          = (*Broker)(nil)
)

// order says how a read shares its count among topics: in turn (the zero
// order), by weight (strides set, keyed by topic) or strictly in the order
// of the topics.
type order struct {
	strict  bool
	strides map[string]int64 // topic -> stride (see internal/share)
}

// stridesOf returns the strides of ks in order. The partitions of a
// topic share its weight: each has the topic's stride times their number.
func (o order) stridesOf(ks []keys) []int64 {
	parts := make(map[string]int64, len(ks))
	for _, k := range ks {
		parts[k.topic]++
	}
	out := make([]int64, len(ks))
	for i, k := range ks {
		out[i] = o.strides[k.topic] * parts[k.topic]
	}
	return out
}

// FetchWeighted is Fetch with priorities (see [broker.PriorityFetcher]), at
// the cost of Fetch. On a single Redis the share-out happens in the read
// script: weighted, each entry goes to the topic with entries that is
// furthest behind its share (stride scheduling; this broker keeps each
// topic's progress between calls); strict, the streams are read in order,
// each with what the ones before it left. On Cluster the shares are worked
// out from the same progress and each stream read with its own COUNT;
// strict first asks every stream how many entries it has (one more round
// trip).
func (b *Broker) FetchWeighted(ctx context.Context, topics []broker.TopicWeight, max int, strict bool) ([]*broker.Delivery, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	if max <= 0 || len(topics) == 0 {
		return nil, nil
	}
	ts := slices.Clone(topics)
	if strict {
		slices.SortStableFunc(ts, func(a, b broker.TopicWeight) int {
			return cmp.Compare(b.Weight, a.Weight)
		})
	}
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = t.Topic
	}
	ks, err := b.topicKeys(ctx, names)
	if err != nil {
		return nil, err
	}
	o := order{strict: strict}
	if !strict {
		o.strides = make(map[string]int64, len(ts))
		for _, t := range ts {
			if _, ok := o.strides[t.Topic]; !ok {
				o.strides[t.Topic] = share.Stride(t.Weight)
			}
		}
	}
	return b.fetch(ctx, ks, max, o)
}

// loadPasses returns the passes of ks (0 for a topic not seen before).
func (b *Broker) loadPasses(ks []keys) []int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]int64, len(ks))
	for i, k := range ks {
		out[i] = b.passes[k.id]
	}
	return out
}

// storePasses keeps the passes of ks, made small.
func (b *Broker) storePasses(ks []keys, pass []int64) {
	if len(pass) != len(ks) {
		return
	}
	share.Normalize(pass)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.passes == nil || len(b.passes) > maxKeyCache {
		b.passes = map[string]int64{}
	}
	for i, k := range ks {
		b.passes[k.id] = pass[i]
	}
}

// Pause stops every consumer of the namespace from fetching topic until
// Resume, by setting the key <ns>:{topic}:paused (to the time of the
// pause, in unix ms). The topic's jobs stay in its stream; delayed jobs
// are moved to the stream when due but not read; leases that expire while
// it is paused are recovered after Resume. Fetches stop returning the
// topic's jobs within Options.Block of the pause: a read of streams (the
// topic's partitions, or several topics) all seen unpaused less than
// Block ago sends their pause keys' GETs in the same pipeline as its
// XREADGROUPs, so a read already sent may still take jobs, and it sees
// the pause; otherwise the read checks the keys first (in the read script,
// or with a GET before a read of one topic); a blocking read already
// waiting may take a job that arrives during its wait. A Fetch on Cluster
// checks at every poll.
// The key outlives the process and, with persistence, Redis restarts.
func (b *Broker) Pause(ctx context.Context, topic string) error {
	if err := b.checkTopic(ctx, topic); err != nil {
		return err
	}
	parts, err := b.allKeys(ctx, topic)
	if err != nil {
		return err
	}
	// A partitioned topic is paused in every partition's slot, where its
	// read script looks.
	at := strconv.FormatInt(b.o.Now().UnixMilli(), 10)
	pipe := b.rdb.Pipeline()
	for _, k := range parts {
		pipe.Set(ctx, k.paused, at, 0)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return b.wrap("pause "+topic, err)
	}
	return nil
}

// Resume lets topic be fetched again by deleting its pause key; Fetches
// see it at their next read.
func (b *Broker) Resume(ctx context.Context, topic string) error {
	if err := b.checkTopic(ctx, topic); err != nil {
		return err
	}
	parts, err := b.allKeys(ctx, topic)
	if err != nil {
		return err
	}
	pipe := b.rdb.Pipeline()
	for _, k := range parts {
		pipe.Del(ctx, k.paused)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return b.wrap("resume "+topic, err)
	}
	return nil
}

// Paused reports whether topic is paused.
func (b *Broker) Paused(ctx context.Context, topic string) (bool, error) {
	if err := b.checkTopic(ctx, topic); err != nil {
		return false, err
	}
	parts, err := b.allKeys(ctx, topic)
	if err != nil {
		return false, err
	}
	err = b.rdb.Get(ctx, parts[0].paused).Err()
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, goredis.Nil):
		return false, nil
	default:
		return false, b.wrap("paused "+topic, err)
	}
}

// checkTopic checks ctx, b and topic.
func (b *Broker) checkTopic(ctx context.Context, topic string) error {
	if err := b.check(ctx); err != nil {
		return err
	}
	return ValidateTopic(topic)
}
