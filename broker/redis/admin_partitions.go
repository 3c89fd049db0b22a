package redis

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/conveyor-jobs/conveyor/broker"
)

var _ broker.PartitionInspector = (*Broker)(nil)

// partsOf returns the keys of every partition of topic (see allKeys), or
// nil when topic is not partitioned and has no retiring layout.
func (b *Broker) partsOf(ctx context.Context, topic string) ([]keys, error) {
	if err := ValidateTopic(topic); err != nil {
		return nil, err
	}
	parts, err := b.allKeys(ctx, topic)
	if err != nil || (len(parts) == 1 && parts[0].n == 1) {
		return nil, err
	}
	return parts, nil
}

// inspectParts is Inspect of a partitioned topic: the partitions added up.
// LastID is the newest partition entry's receipt; Paused is the first
// partition's.
func (b *Broker) inspectParts(ctx context.Context, topic string, parts []keys) (*broker.TopicInfo, error) {
	info := &broker.TopicInfo{Topic: topic, Groups: []broker.GroupInfo{}, Partitions: len(parts)}
	groups := map[string]int{} // name -> index in info.Groups
	for i, k := range parts {
		pi, err := b.inspectKeys(ctx, topic, k)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			info.Paused = pi.Paused
		}
		info.Length += pi.Length
		info.Delayed += pi.Delayed
		info.DeadLetters += pi.DeadLetters
		info.Pending += pi.Pending
		info.Lag += pi.Lag
		if pi.LastID != "" && (info.LastID == "" || compareEntryIDs(k.receipt(pi.LastID), info.LastID) > 0) {
			info.LastID = k.receipt(pi.LastID)
		}
		for _, g := range pi.Groups {
			j, ok := groups[g.Name]
			if !ok {
				j = len(info.Groups)
				groups[g.Name] = j
				info.Groups = append(info.Groups, broker.GroupInfo{Name: g.Name, Consumers: []broker.ConsumerInfo{}})
			}
			ig := &info.Groups[j]
			ig.Pending += g.Pending
			ig.Lag += g.Lag
			if g.LastDeliveredID != "" && g.LastDeliveredID != "0-0" {
				ig.LastDeliveredID = k.receipt(g.LastDeliveredID)
			}
			for _, c := range g.Consumers {
				at := slices.IndexFunc(ig.Consumers, func(x broker.ConsumerInfo) bool { return x.Name == c.Name })
				if at < 0 {
					ig.Consumers = append(ig.Consumers, c)
					continue
				}
				ig.Consumers[at].Pending += c.Pending
				ig.Consumers[at].Idle = min(ig.Consumers[at].Idle, c.Idle)
			}
		}
	}
	return info, nil
}

// InspectPartitions describes each partition of topic (see
// [broker.PartitionInspector]): those of its current count, by index,
// then those of retiring layouts (after a change of count) that still
// hold jobs, with their index in their layout. Node is the address of the
// Cluster master holding the partition, "" on a single Redis.
func (b *Broker) InspectPartitions(ctx context.Context, topic string) ([]broker.PartitionInfo, error) {
	if err := b.checkTopic(ctx, topic); err != nil {
		return nil, err
	}
	parts, err := b.allKeys(ctx, topic)
	if err != nil {
		return nil, err
	}
	current := parts[0].n
	out := make([]broker.PartitionInfo, 0, len(parts))
	for _, k := range parts {
		pi, err := b.inspectKeys(ctx, topic, k)
		if err != nil {
			return nil, err
		}
		p := broker.PartitionInfo{Partition: k.part, Length: pi.Length, Pending: pi.Pending, Lag: pi.Lag,
			Delayed: pi.Delayed, DeadLetters: pi.DeadLetters, Node: b.nodeOf(ctx, k.stream), Draining: k.n != current}
		if k.n != current && p.Length == 0 && p.Delayed == 0 && p.DeadLetters == 0 && p.Pending == 0 {
			continue
		}
		out = append(out, p)
	}
	return out, nil
}

// deadLettersParts is DeadLetters of a partitioned topic: every
// partition's dead letters, merged oldest first (by entry ID, then
// partition). A dead letter's ID is "<entry ID>@<n>/<i>" (see
// keys.receipt). Each page reads every partition's dead letters.
func (b *Broker) deadLettersParts(ctx context.Context, topic string, parts []keys, after string, limit int) ([]broker.DeadLetter, error) {
	if after != "" {
		if _, id := b.receiptKeys(topic, after); !validEntryID(id) {
			return nil, fmt.Errorf("%w: dead letter %q of %q (not a dead letter ID)", broker.ErrNotFound, after, topic)
		}
	}
	var all []broker.DeadLetter
	for _, k := range parts {
		ds, err := b.deadLettersKeys(ctx, topic, k, "", 0)
		if err != nil {
			return nil, err
		}
		all = append(all, ds...)
	}
	slices.SortStableFunc(all, func(x, y broker.DeadLetter) int { return compareEntryIDs(x.ID, y.ID) })
	if after != "" {
		all = slices.DeleteFunc(all, func(d broker.DeadLetter) bool { return compareEntryIDs(d.ID, after) <= 0 })
	}
	if limit > 0 && len(all) > limit {
		all = all[:limit]
	}
	if all == nil {
		all = []broker.DeadLetter{}
	}
	return all, nil
}

// eachPart runs fn on the partitions of parts with the dead letters of ids
// that each holds (entry IDs; nil ids: fn(k, nil) for every partition),
// and returns the sum of what fn returned and the errors joined.
func (b *Broker) eachPart(topic string, parts []keys, ids []string, fn func(k keys, ids []string) (int, error)) (int, error) {
	total := 0
	var errs []error
	if ids == nil {
		for _, k := range parts {
			n, err := fn(k, nil)
			total += n
			if err != nil {
				errs = append(errs, err)
			}
		}
		return total, errors.Join(errs...)
	}
	byStream := map[string][]string{}
	var order []keys
	for _, r := range ids {
		k, id := b.receiptKeys(topic, r)
		if _, ok := byStream[k.stream]; !ok {
			order = append(order, k)
			byStream[k.stream] = []string{}
		}
		byStream[k.stream] = append(byStream[k.stream], id)
	}
	for _, k := range order {
		n, err := fn(k, byStream[k.stream])
		total += n
		if err != nil {
			errs = append(errs, err)
		}
	}
	return total, errors.Join(errs...)
}

// compareEntryIDs orders stream entry IDs and receipts ("<ms>-<seq>" with
// an optional "@<n>/<i>"): by time, sequence, then as strings.
func compareEntryIDs(x, y string) int {
	xm, xs := splitEntryID(x)
	ym, ys := splitEntryID(y)
	return cmp.Or(cmp.Compare(xm, ym), cmp.Compare(xs, ys), strings.Compare(x, y))
}

// splitEntryID returns the time and sequence of an entry ID or receipt.
func splitEntryID(id string) (uint64, uint64) {
	id, _, _ = strings.Cut(id, "@")
	ms, seq, _ := strings.Cut(id, "-")
	m, _ := strconv.ParseUint(ms, 10, 64)
	s, _ := strconv.ParseUint(seq, 10, 64)
	return m, s
}
