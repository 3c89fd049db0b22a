package redis

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/broker"
)

// Topic discovery finds the streams of the namespace that are not in the
// topic registry (written by another producer, such as redis-cli XADD) by
// SCAN … MATCH <ns>:{*}:* COUNT scanCount TYPE stream. One pass is a full
// SCAN of the keyspace, of every master of a Redis Cluster, with a cursor per
// master. A pass is spread over Topics calls: each runs at most scanBudget
// SCAN calls and keeps the cursors for the next call, so no caller waits for
// a whole scan.
const (
	// scanCount is the COUNT of each SCAN call.
	scanCount = 1000
	// scanBudget is the most SCAN calls one Topics call runs. Measured on
	// loopback against Redis 7.0 over 1 and 2 million keys, one call took
	// 0.6 to 0.8 ms (1.5 ms at worst), so a Topics call spends about 3 ms
	// on discovery, and a pass over a million keys takes 250 calls.
	scanBudget = 4
)

// discovery is the state of topic discovery.
type discovery struct {
	// run is held by the one Topics call that takes a discovery step. The
	// others do not wait for it (TryLock): they list what list holds.
	run sync.Mutex

	// Guarded by run.
	passing bool                // a pass is in progress
	at      time.Time           // when the last pass completed (Options.Now)
	cursors []scanCursor        // the pass's SCAN cursors, one per master
	prev    []string            // the topics the last completed pass found
	found   map[string]struct{} // the topics the pass in progress found so far
	partial bool                // the pass left out a master that refused SCAN
	denied  bool                // SCAN was refused by the ACL (warned once)
	errText string              // the last scan error logged…
	errAt   time.Time           // …and when

	// list is prev ∪ found, sorted: the discovered topics Topics lists.
	list atomic.Pointer[[]string]
}

// scanCursor is where the pass in progress stands on one server.
type scanCursor struct {
	addr   string // the master's address; "" for a client that is not a Cluster's
	cursor uint64
	done   bool
}

// discoverTopics returns the topics discovery has found so far (see
// discovery), after taking one step of the pass, unless another call is
// taking one. It never fails and never waits for another call: scan errors
// are logged, and the pass goes on from the same cursors at the next call.
func (b *Broker) discoverTopics(ctx context.Context) []string {
	if b.o.DiscoverInterval < 0 {
		return nil
	}
	d := &b.disc
	if d.run.TryLock() {
		b.discoverStep(ctx)
		d.run.Unlock()
	}
	if l := d.list.Load(); l != nil {
		return *l
	}
	return nil
}

// discoverStep runs at most scanBudget SCAN calls of the pass in progress,
// or of a new pass when DiscoverInterval has passed since the last one
// completed, registers the topics found and publishes the list. The caller
// holds b.disc.run.
func (b *Broker) discoverStep(ctx context.Context) {
	d := &b.disc
	if !d.passing {
		if !d.at.IsZero() && b.o.Now().Sub(d.at) < b.o.DiscoverInterval {
			return
		}
		b.startPass()
	}
	added, err := b.scanStep(ctx)
	b.registerFound(ctx, added)
	switch {
	case err == nil:
		b.completePass()
	case isNoPerm(err):
		// Not allowed to SCAN: that master is left out of this pass (the
		// others go on), and the next pass, after the interval, tries it
		// again in case the permission is granted.
		if !d.denied {
			d.denied = true
			b.log.Warn("conveyor/redis: the Redis user may not run SCAN: topics written only by other producers (redis-cli XADD) are not listed until a worker fetches them; grant +scan",
				"err", err)
		}
		b.completePass()
	case ctx.Err() != nil, b.closed.Load():
		// The caller's deadline or cancellation, or a closed broker: not a
		// fault of the scan.
	default:
		now := b.o.Now()
		if text := err.Error(); text != d.errText || now.Sub(d.errAt) >= b.o.DiscoverInterval {
			d.errText, d.errAt = text, now
			b.log.Warn("conveyor/redis: topic discovery: SCAN failed; topics written only by other producers (redis-cli XADD) may be missing from the listing until it succeeds (it is retried from where it stopped at the next listing)",
				"err", err)
		}
	}
	b.publishDiscovered()
}

// registerFound adds the topics a scan step found to the registry. The
// listing does not need the registry: a user without SADD still sees them.
func (b *Broker) registerFound(ctx context.Context, added []string) {
	if len(added) == 0 {
		return
	}
	ks := make([]keys, len(added))
	for i, t := range added {
		ks[i] = b.keysFor(t)
	}
	if err := b.registerTopics(ctx, ks); err != nil {
		b.log.Debug("conveyor/redis: could not register discovered topics", "err", err)
	}
}

// abandonPass ends the pass in progress without scanning the rest, as a
// pass that left masters out: what it found joins what earlier passes
// found, so that the listing never loses a topic it showed. The caller
// holds b.disc.run.
func (b *Broker) abandonPass() {
	b.disc.partial, b.disc.cursors = true, nil
	b.completePass()
}

// startPass starts a pass from the start of the keyspace. The caller holds
// b.disc.run.
func (b *Broker) startPass() {
	d := &b.disc
	d.passing, d.cursors, d.found = true, nil, map[string]struct{}{}
}

// completePass ends the pass in progress when every cursor is done, and
// reports whether it did. The caller holds b.disc.run.
func (b *Broker) completePass() bool {
	d := &b.disc
	if slices.ContainsFunc(d.cursors, func(c scanCursor) bool { return !c.done }) {
		return false
	}
	if d.partial {
		// A master was left out: keep what earlier passes found, which
		// may live on it, rather than drop it from the listing.
		for _, t := range d.prev {
			d.found[t] = struct{}{}
		}
	}
	d.prev = slices.Sorted(maps.Keys(d.found))
	d.passing, d.cursors, d.found, d.partial = false, nil, nil, false
	d.at = b.o.Now()
	return true
}

// DiscoverTopics lists the topics like [Broker.Topics], after a whole pass
// of topic discovery: it scans the keyspace to the end (every master of a
// Redis Cluster) before it returns, starting a new pass unless one is in
// progress, however recently the last one completed. It is for one-shot
// callers such as a command-line tool, which make a single listing; a
// long-running process should call Topics, which spreads the scan over its
// calls. DiscoverTopics waits for a step another call is taking, and
// returns ctx.Err() when ctx ends first. A failed SCAN is returned (the pass
// goes on from the same cursor at the next call); so is a refusal by the ACL
// (an error that starts with NOPERM), for which Topics lists the registered
// topics only.
func (b *Broker) DiscoverTopics(ctx context.Context) ([]string, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	if b.o.DiscoverInterval >= 0 {
		if err := b.discoverPass(ctx); err != nil {
			return nil, b.wrap("discover topics", err)
		}
	}
	return b.Topics(ctx)
}

// discoverPass runs discovery to the end of a pass.
func (b *Broker) discoverPass(ctx context.Context) error {
	d := &b.disc
	for !d.run.TryLock() {
		t := time.NewTimer(time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	defer d.run.Unlock()
	defer b.publishDiscovered()
	// A pass in progress started before this call: SCAN guarantees only
	// the keys that exist during the whole scan, so streams written since
	// in the part already scanned would be missed. Start a new pass.
	if d.passing {
		b.abandonPass()
	}
	b.startPass()
	var denied error
	for {
		if b.closed.Load() {
			return broker.ErrClosed
		}
		added, err := b.scanStep(ctx)
		b.registerFound(ctx, added)
		switch {
		case err == nil:
		case isNoPerm(err):
			// That master is left out of the pass: finish the others.
			if denied == nil {
				denied = err
			}
		default:
			return err
		}
		if b.completePass() {
			return denied
		}
	}
}

// scanStep runs at most scanBudget SCAN calls of the pass in progress and
// returns the topics found that the pass had not found yet.
func (b *Broker) scanStep(ctx context.Context) ([]string, error) {
	d := &b.disc
	nodes, err := b.scanNodes(ctx)
	if err != nil {
		return nil, err
	}
	// Masters that appeared since the pass started (a failover) are
	// scanned from the start; masters that are gone are skipped.
	for _, addr := range slices.Sorted(maps.Keys(nodes)) {
		if !slices.ContainsFunc(d.cursors, func(c scanCursor) bool { return c.addr == addr }) {
			d.cursors = append(d.cursors, scanCursor{addr: addr})
		}
	}
	pattern := globEscape(b.o.Namespace) + ":{*}:*"
	var added []string
	var firstErr error
	calls := 0
	for i := range d.cursors {
		c := &d.cursors[i]
		node, ok := nodes[c.addr]
		if !ok {
			c.done = true
			continue
		}
		for !c.done {
			if calls == scanBudget {
				return added, firstErr
			}
			if err := ctx.Err(); err != nil {
				return added, err
			}
			if b.closed.Load() {
				return added, broker.ErrClosed
			}
			calls++
			ks, next, err := node.ScanType(ctx, c.cursor, pattern, scanCount, "stream").Result()
			if err != nil {
				// Go on with the other masters: one that fails must not
				// stop discovery on the rest. A master that refuses SCAN
				// is left out of this pass; any other failure keeps its
				// cursor for the next step.
				if firstErr == nil {
					firstErr = err
				}
				if isNoPerm(err) {
					c.done, d.partial = true, true
				}
				break
			}
			for _, k := range ks {
				if t, ok := b.topicOfKey(k); ok {
					if _, seen := d.found[t]; !seen {
						d.found[t] = struct{}{}
						added = append(added, t)
					}
				}
			}
			c.cursor, c.done = next, next == 0
		}
	}
	return added, firstErr
}

// scanNodes returns the clients to scan, by address: every master of a
// Redis Cluster, else the broker's client under "".
func (b *Broker) scanNodes(ctx context.Context) (map[string]goredis.Cmdable, error) {
	cc, ok := b.rdb.(*goredis.ClusterClient)
	if !ok {
		return map[string]goredis.Cmdable{"": b.rdb}, nil
	}
	var mu sync.Mutex
	nodes := map[string]goredis.Cmdable{}
	err := cc.ForEachMaster(ctx, func(_ context.Context, c *goredis.Client) error {
		mu.Lock()
		defer mu.Unlock()
		nodes[c.Options().Addr] = c
		return nil
	})
	if err == nil && len(nodes) == 0 {
		err = errors.New("the cluster reports no master")
	}
	return nodes, err
}

// publishDiscovered stores the topics of the last completed pass and those
// the pass in progress found so far as the discovered list. The caller
// holds b.disc.run.
func (b *Broker) publishDiscovered() {
	d := &b.disc
	l := slices.Clone(d.prev)
	for t := range d.found {
		l = append(l, t)
	}
	slices.Sort(l)
	l = slices.Compact(l)
	d.list.Store(&l)
}

// topicOfKey returns the base topic of a key of the namespace that is a
// topic's stream (<ns>:{T}:stream) or dead-letter stream (<ns>:{T}:dlq,
// <ns>:{T}:dlq:dlq, …), and whether key is one.
func (b *Broker) topicOfKey(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, b.o.Namespace+":{")
	if !ok {
		return "", false
	}
	base, suffix, ok := strings.Cut(rest, "}")
	base = tagBase(base)
	if !ok || ValidateTopic(base) != nil || b.makeKeys(base).base != base {
		return "", false
	}
	dlq := len(suffix) > 0 && strings.Repeat(":dlq", len(suffix)/4) == suffix
	if suffix != ":stream" && !dlq {
		return "", false
	}
	return base, true
}

// globEscape escapes the characters special in a Redis glob pattern.
func globEscape(s string) string {
	var sb strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`\*?[]`, r) {
			sb.WriteByte('\\')
		}
		sb.WriteRune(r)
	}
	return sb.String()
}

// isNoPerm reports an ACL refusal (see parseACLRefusal).
func isNoPerm(err error) bool {
	if err == nil {
		return false
	}
	_, ok := parseACLRefusal(err.Error())
	return ok
}
