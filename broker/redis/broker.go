package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/job"
)

// Compile-time checks of the capabilities the Redis broker offers.
var (
	_ broker.Broker          = (*Broker)(nil)
	_ broker.Inspector       = (*Broker)(nil)
	_ broker.Trimmer         = (*Broker)(nil)
	_ broker.HealthChecker   = (*Broker)(nil)
	_ broker.DeadLetterAdmin = (*Broker)(nil)
)

// ReasonMalformed is the [job.Failure.Reason] of a stream entry that is not a
// valid job (it has no payload field, say). Such entries are dead-lettered at
// once with the original fields kept, never dropped and never retried.
const ReasonMalformed = "malformed"

// Defaults of [Options] fields left at their zero value.
const (
	DefaultNamespace        = "conveyor"
	DefaultGroup            = "conveyor"
	DefaultLease            = 30 * time.Second
	DefaultMaxDeliveries    = 3
	DefaultBlock            = time.Second
	DefaultClaimInterval    = time.Second
	DefaultDeadLetterMaxLen = 100000
	DefaultDiscoverInterval = 30 * time.Second
	DefaultUniqueClaimTTL   = 7 * 24 * time.Hour
	// MaxBlock is the longest allowed Options.Block: a blocking read cannot
	// be interrupted, so Close and ctx cancellation wait up to Block.
	MaxBlock = 2 * time.Second
)

// Options configure a [Broker]. The zero value of every field selects its
// documented default; a nil *Options means all defaults.
type Options struct {
	// Namespace prefixes every key. Default "conveyor". It must not contain
	// '{' or '}' (they would change Cluster hash slots).
	Namespace string
	// Group is the consumer group name, one per application. Default
	// "conveyor".
	Group string
	// Consumer names this process inside the group. Default
	// "<hostname>-<pid>". Two live brokers must not share a consumer name.
	Consumer string
	// Lease is how long a delivery stays with this consumer without Extend
	// before another consumer recovers it. Default 30s.
	Lease time.Duration
	// MaxDeliveries is the poison limit: an entry delivered this many times
	// in a row with no outcome (its worker crashed or lost the lease every
	// time) is dead-lettered with reason job.ReasonMaxDeliveries when its
	// lease expires once more, instead of being delivered again. It counts
	// the deliveries of one stream entry, not the job's attempts: a retried
	// or snoozed job is a new entry, whose count starts again, and how many
	// attempts a job gets is the retry policy's business alone. Default 3.
	MaxDeliveries int
	// Block is how long Fetch waits in XREADGROUP BLOCK for new jobs.
	// Default 1s; it must be > 0 and <= 2s (see MaxBlock).
	Block time.Duration
	// ClaimInterval is how often Fetch recovers expired leases (XAUTOCLAIM)
	// and looks for due delayed jobs of every topic. Default 1s. A delayed
	// job added through this broker is promoted when it is due, whatever
	// ClaimInterval; one added by another process up to about
	// ClaimInterval after it is due.
	ClaimInterval time.Duration
	// DeadLetterMaxLen is the dead-letter stream size past which every new
	// dead letter is logged at error level and counted
	// ([Broker.DeadLetterOverflows]). The dead letter is still stored: the
	// cap never drops a job. Default 100000; negative disables the check.
	DeadLetterMaxLen int64
	// DiscoverInterval is the pause between two passes of topic discovery:
	// [Broker.Topics] finds the streams of the namespace that are not in the
	// topic registry (written by other producers, such as redis-cli XADD)
	// with a SCAN of the keyspace spread over its calls, at most 4 SCAN
	// calls of COUNT 1000 per Topics call. A new pass starts at the first
	// Topics call DiscoverInterval after the previous pass completed; in
	// between, Topics lists what the passes found. A pass takes about one
	// Topics call per 4,000 keys (of every master, in a Cluster);
	// a stream created by another producer is listed at the latest when
	// the first pass that starts after its creation completes. Default 30s;
	// negative: never scan, list only registered topics.
	DiscoverInterval time.Duration
	// CancelRequestTTL is how long the request to cancel a running job
	// ([Broker.Cancel]) lasts: the server holding the job sees it within
	// about a second, and a job whose holder crashed is cancelled by the
	// consumer that recovers it, if that happens within this time. Default
	// 10m.
	CancelRequestTTL time.Duration
	// UniqueClaimTTL is the safety expiry of a unique job's claim on its
	// key while the job lives: the claim ends this long after the job's due
	// time (at publication, retry, snooze and replay, each of which renews
	// it) even if nothing released it, so that a job that vanished without
	// a settle (trimmed with IncludeUnread, deleted by hand) cannot hold
	// its key forever. A job that stays queued or running longer than this
	// loses its claim. Default 7 days (broker.MaxTimeout, the longest
	// handler deadline a job can ask for); negative is an error.
	UniqueClaimTTL time.Duration
	// ResultRetention is how long the result of a job acknowledged with one
	// (job.SetResult) is kept, in <ns>:{T}:result:<id>, for
	// [Broker.JobState]. Default 24h (DefaultResultRetention); at most
	// MaxResultRetention.
	ResultRetention time.Duration
	// TLS configures certificates for rediss:// URLs given to [Open]. [New]
	// refuses it ([ErrTLSWithClient]): its client is already configured.
	TLS *TLSOptions
	// Logger receives operational logs (lost entries, malformed entries,
	// dead-letter overflow). Default slog.Default().
	Logger *slog.Logger
	// Now is the clock used for enqueue times, delayed jobs and
	// DiscoverInterval. Default time.Now.
	Now func() time.Time
	// NoPublishCoalescing turns off the coalescing of concurrent Publish
	// calls: by default a Publish made while another is waiting for Redis
	// is sent in one pipeline with the others that arrive meanwhile (a
	// lone Publish is sent at once, as without coalescing). With it set,
	// every Publish is its own round trip.
	NoPublishCoalescing bool
}

// TLSOptions configure TLS for rediss:// URLs. Certificates are verified
// against the system roots unless CAFile is set; verification is only turned
// off by InsecureSkipVerify.
type TLSOptions struct {
	// CAFile is a PEM file of CA certificates to trust instead of the
	// system roots.
	CAFile string
	// CertFile and KeyFile are a PEM client certificate and key, for
	// servers that require client authentication.
	CertFile string
	KeyFile  string
	// ServerName overrides the name checked in the server's certificate
	// (default: the URL's host).
	ServerName string
	// InsecureSkipVerify turns off certificate verification. Never use it
	// in production.
	InsecureSkipVerify bool
}

// Broker is a [broker.Broker] on Redis Streams with one consumer group per
// application. It also implements [broker.Inspector],
// [broker.DeadLetterAdmin], [broker.Trimmer] and [broker.HealthChecker].
//
// A Broker is safe for concurrent use. Create it with [New] or [Open] and
// release it with Close.
type Broker struct {
	rdb     goredis.UniversalClient
	owned   bool
	cluster bool
	o       Options
	log     *slog.Logger

	closed         atomic.Bool
	groups         sync.Map // stream key -> struct{}: consumer group known to exist
	vanished       sync.Map // stream key -> struct{}: its known group was found missing
	topics         sync.Map // base topic -> struct{}: registered in <ns>:topics
	keyCache       sync.Map // topic -> keys
	keyCacheN      atomic.Int64
	lost           atomic.Int64
	overflows      atomic.Int64
	stale          atomic.Int64
	readTurn       atomic.Uint64 // which stream a read serves first
	windowTurn     atomic.Uint64 // where a Cluster read's window starts (see readWindow)
	partCache      partCache     // keys of partitions (see partKeys)
	layouts        layoutCache   // partition layouts read from the registry
	turn           atomic.Uint64 // next partition of a job without a key
	registryDenied atomic.Bool   // the ACL refused a read of the partition registry (logged once)

	disc discovery // topic discovery for Topics
	pub  coalescer // concurrent Publish calls sent together (coalesce.go)

	batchSweep atomic.Int64 // unix ms of the last batch sweep (see batch.go)

	mu        sync.Mutex
	lastMaint map[string]time.Time  // topic -> last recovery/promotion
	cursors   map[string]string     // topic -> XAUTOCLAIM cursor to resume
	due       map[string]dueAt      // topic -> head of its delayed set
	waits     map[*waiting]struct{} // reads waiting for new entries
	buf       []*buffered           // fetched, not yet returned
	passes    map[string]int64      // topic -> pass of weighted fetches (see internal/share)
	pauseSeen map[string]pauseSeen  // keys.id -> its pause key as a one-topic read last saw it (see readOne)
	// pipeWait is how long a wait pipelined with other commands may
	// block (see waitOne): Block, or less when the client's read timeout,
	// which go-redis applies to a whole pipeline, would cut it; 0 when
	// the client's options are unknown.
	pipeWait  time.Duration
	dry       map[string]bool      // keys.id -> its stream gave nothing at the last readMany
	lastDrain map[string]time.Time // base topic -> last check of its retiring layouts
}

// buffered is a delivery read beyond a Fetch's max, returned by a later
// Fetch.
type buffered struct {
	d  *broker.Delivery
	at time.Time
}

// ErrTLSWithClient is returned by [New] when Options.TLS is set: New uses
// the client it is given as it is, so TLS belongs to that client.
var ErrTLSWithClient = errors.New("conveyor/redis: Options.TLS is set, but New uses the client it is given as it is: configure TLS on that client (its TLSConfig), or use Open with a rediss:// URL")

// New returns a Broker using client, which the caller keeps owning: Close
// does not close it. client may be a *goredis.Client, a
// *goredis.ClusterClient or a Sentinel-backed client. New does no I/O. It
// returns [ErrTLSWithClient] when opts.TLS is set: TLS is configured on the
// client.
func New(client goredis.UniversalClient, opts *Options) (*Broker, error) {
	if opts != nil && opts.TLS != nil {
		return nil, ErrTLSWithClient
	}
	return newBroker(client, opts)
}

// newBroker is New without its check of opts.TLS, which Open has applied.
func newBroker(client goredis.UniversalClient, opts *Options) (*Broker, error) {
	if client == nil {
		return nil, errors.New("conveyor/redis: nil client")
	}
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	_, cluster := client.(*goredis.ClusterClient)
	return &Broker{
		rdb:       client,
		cluster:   cluster,
		pipeWait:  pipeWait(client, o.Block),
		o:         o,
		log:       o.Logger.With("broker", "redis", "namespace", o.Namespace),
		lastMaint: map[string]time.Time{},
		cursors:   map[string]string{},
		due:       map[string]dueAt{},
		waits:     map[*waiting]struct{}{},
	}, nil
}

// pipeWait returns the longest BLOCK a pipeline of client can wait
// without reaching its read timeout, up to block: three quarters of the
// timeout, all of block when reads have none, and 0 for a client whose
// options are unknown. (Options returns them as go-redis set them up: 0
// or less means no read deadline.)
func pipeWait(client goredis.UniversalClient, block time.Duration) time.Duration {
	c, ok := client.(*goredis.Client)
	if !ok {
		return 0
	}
	if rt := c.Options().ReadTimeout; rt > 0 {
		return min(block, rt*3/4)
	}
	return block
}

func (opts *Options) withDefaults() (Options, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if strings.ContainsAny(o.Namespace, "{}") {
		return o, fmt.Errorf("conveyor/redis: namespace %q must not contain '{' or '}'", o.Namespace)
	}
	if o.Group == "" {
		o.Group = DefaultGroup
	}
	if o.Consumer == "" {
		host, _ := os.Hostname()
		if host == "" {
			host = "conveyor"
		}
		o.Consumer = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	switch {
	case o.Lease == 0:
		o.Lease = DefaultLease
	case o.Lease < time.Millisecond:
		return o, fmt.Errorf("conveyor/redis: lease %v must be at least 1ms", o.Lease)
	}
	switch {
	case o.MaxDeliveries == 0:
		o.MaxDeliveries = DefaultMaxDeliveries
	case o.MaxDeliveries < 0:
		return o, fmt.Errorf("conveyor/redis: max deliveries %d must be positive", o.MaxDeliveries)
	}
	switch {
	case o.Block == 0:
		o.Block = DefaultBlock
	case o.Block < time.Millisecond || o.Block > MaxBlock:
		return o, fmt.Errorf("conveyor/redis: block %v must be between 1ms and %v", o.Block, MaxBlock)
	}
	switch {
	case o.ClaimInterval == 0:
		o.ClaimInterval = DefaultClaimInterval
	case o.ClaimInterval < 0:
		return o, fmt.Errorf("conveyor/redis: claim interval %v must be positive", o.ClaimInterval)
	}
	if o.DeadLetterMaxLen == 0 {
		o.DeadLetterMaxLen = DefaultDeadLetterMaxLen
	}
	if o.DiscoverInterval == 0 {
		o.DiscoverInterval = DefaultDiscoverInterval
	}
	switch {
	case o.CancelRequestTTL == 0:
		o.CancelRequestTTL = DefaultCancelRequestTTL
	case o.CancelRequestTTL < time.Millisecond:
		return o, fmt.Errorf("conveyor/redis: cancel request TTL %v must be at least 1ms", o.CancelRequestTTL)
	}
	switch {
	case o.UniqueClaimTTL == 0:
		o.UniqueClaimTTL = DefaultUniqueClaimTTL
	case o.UniqueClaimTTL < 0:
		return o, fmt.Errorf("conveyor/redis: unique claim TTL %v must be positive", o.UniqueClaimTTL)
	}
	if err := o.resultDefaults(); err != nil {
		return o, err
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o, nil
}

// Lease returns how long a delivery stays leased without Extend.
func (b *Broker) Lease() time.Duration { return b.o.Lease }

// Options returns the options in force, defaults filled in (TLS and Logger
// included as given).
func (b *Broker) Options() Options { return b.o }

// Client returns the Redis client the broker uses.
func (b *Broker) Client() goredis.UniversalClient { return b.rdb }

// Lost returns how many pending entries recovery found deleted from their
// stream (trimmed or XDEL'd while leased): jobs that can no longer run. Each
// is also logged at error level.
func (b *Broker) Lost() int64 { return b.lost.Load() }

// DeadLetterOverflows returns how many dead letters were stored while their
// dead-letter stream was at or above Options.DeadLetterMaxLen.
func (b *Broker) DeadLetterOverflows() int64 { return b.overflows.Load() }

// StaleSettles returns how many Retry, Snooze or DeadLetter calls found their
// entry no longer pending (settled before, or recovered and settled by
// another consumer), and so wrote nothing.
func (b *Broker) StaleSettles() int64 { return b.stale.Load() }

// Close marks the broker closed: every later call returns broker.ErrClosed
// and a Fetch waiting in Redis returns ErrClosed within Options.Block. A
// client created by [Open] is closed too. Deliveries returned by Fetch and
// not settled stay pending and are recovered by another consumer after the
// lease. Entries a Fetch read while Close ran, and did not return, are put
// back at once, without spending an attempt, when the broker does not own
// its client ([New]); with a client created by [Open], which Close has
// closed, they stay pending like the others and are recovered after the
// lease, as a redelivery. Close is idempotent.
func (b *Broker) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	b.closePublish()
	b.mu.Lock()
	buf := b.buf
	b.buf = nil
	b.mu.Unlock()
	ds := make([]*broker.Delivery, len(buf))
	for i, e := range buf {
		ds[i] = e.d
	}
	b.release(ds)
	if b.owned {
		goredisLog.remove(b)
		return b.rdb.Close()
	}
	return nil
}

// release puts deliveries that were leased but never handed out (read
// beyond a Fetch's max, or read as Close happened) back at the end of their
// stream, keeping their attempt, so a shutdown does not spend an attempt of
// jobs that never ran. It is best effort: what it cannot release is
// recovered after the lease as usual.
func (b *Broker) release(ds []*broker.Delivery) {
	if len(ds) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	calls := make([]scriptCall, len(ds))
	for i, d := range ds {
		k, _ := b.dkeys(d)
		calls[i] = b.settleCall(d, k.stream, k.stream, "stream", "", "", encodeFields(&d.Job, d.Job.Attempt, d.Job.Failure))
	}
	if _, err := b.runScripts(ctx, calls); err != nil {
		b.log.Warn("conveyor/redis: could not release unreturned deliveries; they are recovered after the lease", "count", len(ds), "err", err)
	}
}

// check returns ErrClosed when b is closed, else ctx.Err().
func (b *Broker) check(ctx context.Context) error {
	if b.closed.Load() {
		return broker.ErrClosed
	}
	return ctx.Err()
}

// wrap turns an error of a command into the error callers see: ErrClosed
// when the broker was closed meanwhile; an ACL refusal says which
// permission is missing (see explainACL).
func (b *Broker) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if b.closed.Load() {
		return broker.ErrClosed
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("conveyor/redis: %s: %w", op, b.explainACL(err))
}

// ValidateTopic reports whether topic can be used with a Broker: it must not
// be empty, nor contain '{' or '}', which would change the Redis Cluster hash
// tag {topic} that keeps a topic's keys in one slot. The error wraps
// broker.ErrInvalidMessage and names the topic and the rule.
func ValidateTopic(topic string) error {
	if topic == "" || strings.ContainsAny(topic, "{}") {
		return fmt.Errorf("%w: topic %q: a topic name must be non-empty and must not contain '{' or '}' (they would break the Redis Cluster hash tag of its keys)",
			broker.ErrInvalidMessage, topic)
	}
	return nil
}

// keys are the Redis keys of one topic, or of one partition of a
// partitioned topic (see partition.go). All share one hash tag, so they sit
// in one Cluster slot.
type keys struct {
	topic   string // as given, e.g. "orders" or "orders.dlq"
	id      string // names the stream among a topic's partitions: topic, or topic + "\x00" + n + "/" + part
	n       int    // the partition count of the layout: 1 for the topic's historical keys
	part    int    // the partition's index in its layout
	base    string // without ".dlq" suffixes: the registry entry
	stream  string // where the topic's jobs are read from
	delayed string // delayed jobs of the topic
	dlq     string // the topic's dead-letter stream (= stream of topic+".dlq")
	paused  string // set while the topic is paused (see Broker.Pause)
	unique  string // prefix of the claims of the topic's unique keys
}

// keysFor maps a topic to its keys: topic T uses <ns>:{T}:stream,
// <ns>:{T}:delayed, <ns>:{T}:dlq and <ns>:{T}:paused; its dead-letter topic
// T.dlq reads <ns>:{T}:dlq, delays into <ns>:{T}:dlq:delayed, dead-letters
// into <ns>:{T}:dlq:dlq, is paused by <ns>:{T}:dlq:paused, and so on.
func (b *Broker) keysFor(topic string) keys {
	if k, ok := b.keyCache.Load(topic); ok {
		return k.(keys)
	}
	k := b.makeKeys(topic)
	if b.keyCacheN.Add(1) <= maxKeyCache {
		b.keyCache.Store(topic, k)
	}
	return k
}

// maxKeyCache bounds the topics whose keys are cached.
const maxKeyCache = 10000

func (b *Broker) makeKeys(topic string) keys { return b.makeKeysIn(topic, 1, 0) }

// makeKeysIn returns the keys of partition part of topic's layout of n
// partitions: those of makeKeys under the hash tag of the partition (see
// partitionTag) instead of {base}, when n > 1.
func (b *Broker) makeKeysIn(topic string, n, part int) keys {
	base, depth := topic, 0
	for strings.HasSuffix(base, job.DeadLetterSuffix) && len(base) > len(job.DeadLetterSuffix) {
		base = strings.TrimSuffix(base, job.DeadLetterSuffix)
		depth++
	}
	tag, id := base, topic
	if n > 1 {
		tag = partitionTag(base, n, part)
		id = topic + "\x00" + strconv.Itoa(n) + "/" + strconv.Itoa(part)
	} else {
		n, part = 1, 0
	}
	prefix := b.o.Namespace + ":{" + tag + "}"
	k := keys{topic: topic, id: id, n: n, part: part, base: base}
	if depth == 0 {
		k.stream = prefix + ":stream"
		k.delayed = prefix + ":delayed"
		k.dlq = prefix + ":dlq"
		k.paused = prefix + ":paused"
		k.unique = prefix + ":unique:"
		return k
	}
	k.stream = prefix + strings.Repeat(":dlq", depth)
	k.delayed = k.stream + ":delayed"
	k.dlq = k.stream + ":dlq"
	k.paused = k.stream + ":paused"
	k.unique = k.stream + ":unique:"
	return k
}

// registryKey is the set of base topics ever published to.
func (b *Broker) registryKey() string { return b.o.Namespace + ":topics" }

// isNoGroup reports a NOGROUP error (the stream or its group is gone).
func isNoGroup(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOGROUP")
}

// ensureGroups creates the consumer group on each stream key not yet known
// to have it (XGROUP CREATE key group 0 MKSTREAM; BUSYGROUP is fine), in one
// pipeline.
func (b *Broker) ensureGroups(ctx context.Context, streams ...string) error {
	var missing []string
	for _, s := range streams {
		if _, ok := b.groups.Load(s); !ok {
			missing = append(missing, s)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	pipe := b.rdb.Pipeline()
	cmds := make([]*goredis.StatusCmd, len(missing))
	for i, s := range missing {
		cmds[i] = pipe.XGroupCreateMkStream(ctx, s, b.o.Group, "0")
	}
	infos := make([]*goredis.XInfoGroupsCmd, len(missing))
	for i, s := range missing {
		infos[i] = pipe.XInfoGroups(ctx, s)
	}
	_, _ = pipe.Exec(ctx)
	for i, c := range cmds {
		err := c.Err()
		if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
			return b.wrap("create consumer group on "+missing[i], err)
		}
		if _, was := b.vanished.LoadAndDelete(missing[i]); was && err == nil {
			b.log.Error("conveyor/redis: consumer group was missing (destroyed with XGROUP DESTROY, or its stream deleted) and has been recreated; the new group reads the stream from its start, so jobs in flight or already read may run again, and the jobs of a deleted stream are lost",
				"topic", b.topicOf(missing[i]), "stream", missing[i], "group", b.o.Group)
		}
		b.groups.Store(missing[i], struct{}{})
		b.warnOtherGroups(missing[i], infos[i])
	}
	return nil
}

// warnOtherGroups logs an error when the stream is read by consumer groups
// other than b's: conveyor deletes an entry when it is acknowledged and
// re-adds a retried job to the stream, so every job would reach only one
// of the groups, some twice. It says so once per stream and process (the
// groups are checked when b first uses the stream). A failed XINFO GROUPS
// (an ACL without it) is not an error here.
func (b *Broker) warnOtherGroups(stream string, info *goredis.XInfoGroupsCmd) {
	gs, err := info.Result()
	if err != nil {
		return
	}
	var others []string
	for _, g := range gs {
		if g.Name != b.o.Group {
			others = append(others, g.Name)
		}
	}
	if len(others) == 0 {
		return
	}
	b.log.Error("conveyor/redis: another consumer group reads this topic's stream: conveyor deletes a job from the stream when one group acknowledges it and re-adds retried jobs to it, so each job reaches only one of the groups, some twice; give each application its own topic and publish to both",
		"stream", stream, "group", b.o.Group, "other_groups", others)
}

// forgetGroups drops streams from the group cache so the next call recreates
// their groups. A group that was known to exist has vanished: the
// ensureGroups call that recreates it logs that, once, at error level.
func (b *Broker) forgetGroups(streams ...string) {
	for _, s := range streams {
		if _, had := b.groups.LoadAndDelete(s); had {
			b.vanished.Store(s, struct{}{})
		}
	}
}

// topicOf returns the topic whose stream is the key stream (the inverse of
// keysFor(topic).stream), or stream itself when it is no such key.
func (b *Broker) topicOf(stream string) string {
	rest, ok := strings.CutPrefix(stream, b.o.Namespace+":{")
	if !ok {
		return stream
	}
	i := strings.LastIndex(rest, "}")
	if i < 0 {
		return stream
	}
	base, suffix := tagBase(rest[:i]), rest[i+1:]
	if suffix == ":stream" {
		return base
	}
	depth := strings.Count(suffix, ":dlq")
	if depth == 0 || suffix != strings.Repeat(":dlq", depth) {
		return stream
	}
	return base + strings.Repeat(job.DeadLetterSuffix, depth)
}
