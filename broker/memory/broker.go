package memory

import (
	"context"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
)

// Defaults for the zero fields of [Options].
const (
	DefaultLease         = 30 * time.Second
	DefaultMaxDeliveries = 3
	DefaultFetchWait     = time.Second
	DefaultConsumer      = "memory"
)

// GroupName is the single consumer group a memory broker reports in
// [broker.TopicInfo.Groups].
const GroupName = "memory"

// Options configure a [Broker]. A nil *Options means all defaults.
type Options struct {
	// Lease is how long a delivery stays leased without Extend before it is
	// redelivered. Zero means DefaultLease (30s).
	Lease time.Duration
	// MaxDeliveries is the poison limit: a job delivered this many times in
	// a row with no outcome (its lease expired every time) is dead-lettered
	// with reason job.ReasonMaxDeliveries when its lease expires once more,
	// instead of being delivered again. It counts deliveries, not attempts:
	// Retry and Snooze start a new count. Zero means DefaultMaxDeliveries (3).
	MaxDeliveries int
	// FetchWait is how long Fetch waits for a job when none is ready before
	// it returns an empty batch. Zero means DefaultFetchWait (1s); a negative
	// value means Fetch never waits.
	FetchWait time.Duration
	// Consumer names the consumer of the Broker that New returns (see
	// [Broker.Consumer]). Empty means DefaultConsumer.
	Consumer string
	// ResultRetention is how long the result of a job acknowledged with one
	// (job.SetResult) is kept for [Broker.JobState]. Zero means
	// DefaultResultRetention (24h).
	ResultRetention time.Duration
	// Now returns the current time; nil means time.Now. Due times, leases
	// and timestamps come from it. Waiting uses real timers for the
	// durations it computes, so a fake clock should be advanced and then
	// followed by a Fetch, which promotes and expires lazily.
	Now func() time.Time
}

// Broker is an in-process [broker.Broker] with the semantics of the Redis
// broker: a FIFO ready queue per topic, delayed jobs, leases redelivered to
// any consumer after expiry, atomic retry, snooze and dead-letter, poison
// protection, and dead-letter topics (T.dlq) that can be fetched. Nothing
// survives the process.
//
// The Broker returned by [New] is the root. [Broker.Consumer] returns views
// that share its jobs under another consumer name, as several workers share a
// Redis consumer group. Closing a view closes only that view; closing the root
// closes every view too.
//
// A Broker is safe for concurrent use. Fetch leases jobs to the Broker's
// consumer; Ack accepts a delivery from any view that shares the state (as
// XACK does in a consumer group); Retry, Snooze and DeadLetter accept only a
// delivery leased to this consumer (after a lost lease, the consumer that
// took the job over decides its outcome); Extend renews only the leases
// this consumer holds.
type Broker struct {
	st     *state
	c      *consumer
	root   bool
	closed bool          // guarded by st.mu
	done   chan struct{} // closed by Close
}

var (
	_ broker.Broker          = (*Broker)(nil)
	_ broker.Inspector       = (*Broker)(nil)
	_ broker.Trimmer         = (*Broker)(nil)
	_ broker.DeadLetterAdmin = (*Broker)(nil)
	_ broker.HealthChecker   = (*Broker)(nil)
)

// state is what a root and its views share.
type state struct {
	mu          sync.Mutex
	lease       time.Duration
	poisonLimit int
	fetchWait   time.Duration
	now         func() time.Time
	epoch       time.Time // entry times are nanoseconds since epoch
	prefix      string    // random, ends with '-': receipts are prefix+base36(seq)
	seq         atomic.Uint64

	pos       uint64
	topics    map[string]*topic
	leased    map[uint64]*lease // by receipt sequence number
	leases    leaseList
	delayed   entryHeap
	consumers map[string]*consumer
	claims    map[string]claim // unique keys held, by claimKey
	kept      keptHeap         // claims kept after an ack, soonest end first
	rr        uint32           // index after the topic a Fetch served last
	giving    []*entry         // entries given by a Fetch, to name (see state.name)
	names     []byte           // scratch for state.name

	waiters  waiterList
	touched  []*topic // topics that got ready jobs while someone waits
	timer    *time.Timer
	timerAt  int64
	timerSet bool
	pool     sync.Pool // *waiter

	closed bool
	done   chan struct{}

	sched schedules // schedule entries and their last ticks
	res   results   // results of acked jobs, progress of leased ones (result.go)

	batches map[string]*batch // see batch.go
}

type topic struct {
	name          string
	dlq           string // cached job.DeadLetterTopic(name)
	ready         int    // ready jobs, all partitions
	pending       int64  // leased jobs, all partitions
	delayed       int64  // delayed jobs, all partitions
	parts         []part // at least count; those beyond count drain
	count         int    // partitions Publish uses (SetPartitions)
	turns         turns  // partitions with ready jobs, in serving order
	spread        uint32 // the partition of the next job without a key
	lastID        uint64 // sequence numbers of receipts; 0 for none
	lastDelivered uint64
	readers       []*consumer
	touched       bool
	paused        bool  // see Broker.Pause
	pass          int64 // weighted fetch: see internal/share
}

type consumer struct {
	name     string
	lastSeen time.Time
}

// New returns a root Broker. opts may be nil.
func New(opts *Options) *Broker {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Lease <= 0 {
		o.Lease = DefaultLease
	}
	if o.MaxDeliveries <= 0 {
		o.MaxDeliveries = DefaultMaxDeliveries
	}
	if o.FetchWait == 0 {
		o.FetchWait = DefaultFetchWait
	}
	if o.Consumer == "" {
		o.Consumer = DefaultConsumer
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ResultRetention <= 0 {
		o.ResultRetention = DefaultResultRetention
	}
	const digits = "0123456789abcdefghijklmnopqrstuvwxyz"
	var p [7]byte
	for i := range 6 {
		p[i] = digits[rand.IntN(len(digits))]
	}
	p[6] = '-'
	st := &state{
		lease:       o.Lease,
		poisonLimit: o.MaxDeliveries,
		fetchWait:   o.FetchWait,
		now:         o.Now,
		epoch:       o.Now(),
		prefix:      string(p[:]),
		topics:      make(map[string]*topic),
		leased:      make(map[uint64]*lease),
		consumers:   make(map[string]*consumer),
		done:        make(chan struct{}),
		res:         results{retention: o.ResultRetention},
	}
	st.pool.New = func() any {
		w := &waiter{ch: make(chan struct{}, 1), timer: time.NewTimer(time.Hour)}
		w.timer.Stop()
		return w
	}
	return &Broker{st: st, c: st.consumer(o.Consumer), root: true, done: st.done}
}

// Consumer returns a view of b's jobs that fetches as consumer name. Views
// share everything with the root (jobs, leases, dead letters, options); each
// has its own lifecycle: closing a view ends its pending Fetches and makes its
// methods return [broker.ErrClosed], and the jobs it still holds are
// redelivered after their lease, as for a crashed worker. Two views with the
// same name are the same consumer. Consumer is safe for concurrent use.
func (b *Broker) Consumer(name string) *Broker {
	st := b.st
	st.mu.Lock()
	defer st.mu.Unlock()
	if name == "" {
		name = DefaultConsumer
	}
	return &Broker{st: st, c: st.consumer(name), done: make(chan struct{})}
}

// Name returns the consumer name of b.
func (b *Broker) Name() string { return b.c.name }

func (st *state) consumer(name string) *consumer {
	c := st.consumers[name]
	if c == nil {
		c = &consumer{name: name}
		st.consumers[name] = c
	}
	return c
}

func (b *Broker) closedLocked() bool { return b.closed || b.st.closed }

// Lease returns the lease of every delivery.
func (b *Broker) Lease() time.Duration { return b.st.lease }

// Close closes b: pending Fetches return [broker.ErrClosed] and so do later
// calls. Closing the root closes all its views. Unsettled deliveries stay
// leased and are redelivered after the lease. Closing twice is a no-op.
func (b *Broker) Close() error {
	st := b.st
	st.mu.Lock()
	defer st.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	close(b.done) // the root's done is st.done
	if b.root {
		st.closed = true
		if st.timer != nil {
			st.timer.Stop()
			st.timerSet = false
		}
	}
	return nil
}

// Check returns [broker.ErrClosed] when b is closed, else nil.
func (b *Broker) Check(ctx context.Context) error {
	if err := b.lock(ctx); err != nil {
		return err
	}
	b.st.mu.Unlock()
	return nil
}

// tick converts t to nanoseconds since st.epoch (monotonic when both
// readings are).
func (st *state) tick(t time.Time) int64 { return int64(t.Sub(st.epoch)) }

// next returns a new receipt sequence number.
func (st *state) next() uint64 { return st.seq.Add(1) }

// appendReceipt appends the receipt of seq to p.
func (st *state) appendReceipt(p []byte, seq uint64) []byte {
	p = append(p, st.prefix...)
	return strconv.AppendUint(p, seq, 36)
}

// receiptOf returns the receipt of seq; "" for 0.
func (st *state) receiptOf(seq uint64) string {
	if seq == 0 {
		return ""
	}
	var buf [32]byte
	return string(st.appendReceipt(buf[:0], seq))
}

// seqOf parses the sequence number of a receipt made by st. Only the
// receipt itself parses (no leading zeros), so equal sequence numbers mean
// equal receipts.
func (st *state) seqOf(receipt string) (uint64, bool) {
	if len(receipt) <= len(st.prefix) || receipt[:len(st.prefix)] != st.prefix {
		return 0, false
	}
	if receipt[len(st.prefix)] == '0' {
		return 0, false
	}
	var n uint64
	for _, c := range []byte(receipt[len(st.prefix):]) {
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'z':
			d = c - 'a' + 10
		default:
			return 0, false
		}
		if n > (1<<64-1-uint64(d))/36 {
			return 0, false // overflow
		}
		n = n*36 + uint64(d)
	}
	return n, true
}

func (st *state) topic(name string) *topic {
	t := st.topics[name]
	if t == nil {
		t = newTopic(name)
		st.topics[name] = t
	}
	return t
}
