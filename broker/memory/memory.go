package memory

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/job"
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

// errBadFetch is returned by Fetch for no topics or a max below 1.
var errBadFetch = errors.New("conveyor: memory: Fetch needs at least one topic and max > 0")

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
	leased    map[uint64]*entry // by receipt sequence number
	leases    leaseList
	delayed   entryHeap
	consumers map[string]*consumer
	claims    map[string]claim // unique keys held, by claimKey
	kept      keptHeap         // claims kept after an ack, soonest end first
	rr        uint32           // index after the topic a Fetch served last

	waiters  waiterList
	touched  []*topic // topics that got ready jobs while someone waits
	timer    *time.Timer
	timerAt  int64
	timerSet bool
	pool     sync.Pool // *waiter

	closed bool
	done   chan struct{}

	sched schedules // schedule entries and their last ticks
}

type topic struct {
	name          string
	dlq           string // cached job.DeadLetterTopic(name)
	ready         deque
	pending       int64
	delayed       int64
	lastID        string
	lastDelivered string
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
		leased:      make(map[uint64]*entry),
		consumers:   make(map[string]*consumer),
		done:        make(chan struct{}),
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

// receipt returns a new receipt and its sequence number.
func (st *state) receipt() (string, uint64) {
	seq := st.seq.Add(1)
	var buf [32]byte
	p := append(buf[:0], st.prefix...)
	p = strconv.AppendUint(p, seq, 36)
	return string(p), seq
}

// seqOf parses the sequence number of a receipt made by st.
func (st *state) seqOf(receipt string) (uint64, bool) {
	if len(receipt) <= len(st.prefix) || receipt[:len(st.prefix)] != st.prefix {
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
		t = &topic{name: name, dlq: job.DeadLetterTopic(name)}
		st.topics[name] = t
	}
	return t
}

// Publish enqueues one job and returns its ID. It copies m's payload and
// headers, so the caller may reuse them. When another job of m's topic holds
// m.UniqueKey, it enqueues nothing and returns that job's ID and a
// *broker.DuplicateError (see unique.go for the states of a key).
func (b *Broker) Publish(ctx context.Context, m broker.Message) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if m.Topic == "" {
		return "", fmt.Errorf("%w: empty topic", broker.ErrInvalidMessage)
	}
	if err := m.CheckLimits(); err != nil {
		return "", err
	}
	e := &entry{}
	e.job.Payload = cloneBytes(m.Payload)
	e.job.Headers = maps.Clone(m.Headers)
	e.job.MaxAttempts, e.job.Timeout = m.MaxAttempts, m.Timeout
	e.job.UniqueKey, e.job.UniqueFor = m.UniqueKey, m.UniqueFor
	e.receipt, e.seq = b.st.receipt()
	e.job.ID = m.ID
	if e.job.ID == "" {
		e.job.ID = e.receipt
	}
	e.job.Attempt = 1

	st := b.st
	st.mu.Lock()
	defer st.mu.Unlock()
	if b.closedLocked() {
		return "", broker.ErrClosed
	}
	now := st.now()
	if dup := st.duplicate(&m, now); dup != nil {
		return dup.ID, dup
	}
	e.job.EnqueuedAt = now
	st.enqueue(e, st.topic(m.Topic), m.Due(now), now)
	if m.UniqueKey != "" {
		st.takeClaim(m.Topic, m.UniqueKey, e.job.ID)
	}
	st.flush(now)
	return e.job.ID, nil
}

// PublishBatch enqueues ms under one lock and returns their IDs in order. It
// validates every message first: on error nothing is enqueued. A message
// whose unique key another job holds (one published before, or earlier in
// ms) is not enqueued: its ID is the holder's and its index is in the
// Duplicates of the *broker.BatchError returned; the others are enqueued.
func (b *Broker) PublishBatch(ctx context.Context, ms []broker.Message) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	size := 0
	for i := range ms {
		if ms[i].Topic == "" {
			return nil, fmt.Errorf("%w: message %d: empty topic", broker.ErrInvalidMessage, i)
		}
		if err := ms[i].CheckLimits(); err != nil {
			return nil, fmt.Errorf("message %d: %w", i, err)
		}
		size += len(ms[i].Payload)
	}
	if len(ms) == 0 {
		return []string{}, nil
	}
	st := b.st
	// One allocation each for the entries, the payloads and the receipts.
	entries := make([]entry, len(ms))
	var payloads []byte
	if size > 0 {
		payloads = make([]byte, 0, size)
	}
	last := st.seq.Add(uint64(len(ms)))
	first := last - uint64(len(ms)) + 1
	rbuf := make([]byte, 0, len(ms)*(len(st.prefix)+8))
	ends := make([]int, len(ms))
	for i := range ms {
		rbuf = append(rbuf, st.prefix...)
		rbuf = strconv.AppendUint(rbuf, first+uint64(i), 36)
		ends[i] = len(rbuf)
	}
	receipts := string(rbuf)
	ids := make([]string, len(ms))
	start := 0
	for i := range ms {
		m, e := &ms[i], &entries[i]
		e.receipt, e.seq = receipts[start:ends[i]], first+uint64(i)
		start = ends[i]
		if len(m.Payload) > 0 {
			off := len(payloads)
			payloads = append(payloads, m.Payload...)
			e.job.Payload = payloads[off:len(payloads):len(payloads)]
		}
		e.job.Headers = maps.Clone(m.Headers)
		e.job.MaxAttempts, e.job.Timeout = m.MaxAttempts, m.Timeout
		e.job.UniqueKey, e.job.UniqueFor = m.UniqueKey, m.UniqueFor
		e.job.ID = m.ID
		if e.job.ID == "" {
			e.job.ID = e.receipt
		}
		e.job.Attempt = 1
		ids[i] = e.job.ID
	}

	st.mu.Lock()
	defer st.mu.Unlock()
	if b.closedLocked() {
		return nil, broker.ErrClosed
	}
	now := st.now()
	var t *topic
	var batchErr *broker.BatchError
	for i := range ms {
		if dup := st.duplicate(&ms[i], now); dup != nil {
			if batchErr == nil {
				batchErr = &broker.BatchError{Err: dup}
			}
			batchErr.Duplicates = append(batchErr.Duplicates, i)
			ids[i] = dup.ID
			continue
		}
		if t == nil || t.name != ms[i].Topic {
			t = st.topic(ms[i].Topic)
		}
		e := &entries[i]
		e.job.EnqueuedAt = now
		st.enqueue(e, t, ms[i].Due(now), now)
		if ms[i].UniqueKey != "" {
			st.takeClaim(ms[i].Topic, ms[i].UniqueKey, e.job.ID)
		}
	}
	st.flush(now)
	if batchErr != nil {
		return ids, batchErr
	}
	return ids, nil
}

func cloneBytes(p []byte) []byte {
	if len(p) == 0 {
		return nil
	}
	return bytes.Clone(p)
}

// enqueue stores e in t, ready at due.
func (st *state) enqueue(e *entry, t *topic, due, now time.Time) {
	e.topic = t
	e.job.Topic = t.name
	e.at = st.tick(due)
	if e.at > st.tick(now) {
		e.state = stDelayed
		st.delayed.push(e)
		t.delayed++
		return
	}
	st.makeReady(e)
}

// makeReady appends e to its topic. e.at keeps its due time: the time it
// became ready, for Trim.
func (st *state) makeReady(e *entry) {
	t := e.topic
	e.state = stReady
	st.pos++
	e.pos = st.pos
	t.ready.pushBack(e)
	t.lastID = e.receipt
	st.touch(t)
}

// advance promotes due delayed jobs and takes back expired leases.
func (st *state) advance(now time.Time) {
	tick := st.tick(now)
	st.dropKept(tick)
	for len(st.delayed) > 0 && st.delayed[0].at <= tick {
		e := st.delayed.remove(0)
		e.topic.delayed--
		st.makeReady(e)
	}
	for e := st.leases.head; e != nil && e.at <= tick; e = st.leases.head {
		st.unlease(e)
		// Every delivery of e so far ended with no outcome.
		if e.deliveries >= st.poisonLimit {
			f := job.Failure{
				Error:  fmt.Sprintf("conveyor: delivered %d times with no outcome: its worker crashed or lost the lease each time", e.deliveries),
				Reason: job.ReasonMaxDeliveries,
				At:     now,
			}
			st.deadLetter(e, f, e.attempt(), now)
			continue
		}
		e.state = stReady
		e.topic.ready.pushFront(e)
		st.touch(e.topic)
	}
}

func (st *state) unlease(e *entry) {
	delete(st.leased, e.seq)
	st.leases.remove(e)
	e.topic.pending--
	e.holder = nil
	e.state = stGone
}

// deadLetter stores e's job in its topic's dead-letter topic with f, as
// attempt. e must already be out of every queue.
func (st *state) deadLetter(e *entry, f job.Failure, attempt int, now time.Time) {
	if f.Origin == "" {
		f.Origin = e.topic.name
	}
	if f.At.IsZero() {
		f.At = now
	}
	st.releaseClaim(&e.job, false, now)
	d := &entry{job: e.job}
	// A dead letter may live long: do not pin the payload buffer of the
	// batch it was published in.
	d.job.Payload = cloneBytes(e.job.Payload)
	d.job.Attempt = attempt
	d.job.Failure = &f
	d.receipt, d.seq = st.receipt()
	e.job = job.Job{}
	st.enqueue(d, st.topic(e.topic.dlq), now, now)
}

// take leases up to max ready jobs of topics to b's consumer. It goes round
// the topics from the one after the topic served last, giving each topic
// that has ready jobs an equal part of what is left (at least one), until
// max jobs are taken or none is ready: every topic with a backlog is served
// in turn, and one long backlog does not take every job of a Fetch while
// others wait.
func (st *state) take(b *Broker, topics []string, max int, now time.Time) []*broker.Delivery {
	avail, live := 0, 0
	for _, name := range topics {
		if t := st.topics[name]; t.has() {
			avail += t.ready.len()
			live++
		}
	}
	if avail == 0 {
		return nil
	}
	n := min(avail, max)
	ds := make([]broker.Delivery, n)
	out := make([]*broker.Delivery, 0, n)
	until := st.tick(now) + int64(st.lease)
	first := int(st.rr % uint32(len(topics)))
	for len(out) < n {
		share := 1
		if live > 0 && (n-len(out))/live > 1 {
			share = (n - len(out)) / live
		}
		live = 0
		for k := 0; k < len(topics) && len(out) < n; k++ {
			i := (first + k) % len(topics)
			t := st.topics[topics[i]]
			if !t.has() {
				continue
			}
			for c := 0; c < share && len(out) < n && t.ready.len() > 0; c++ {
				out = append(out, st.give(b, t, &ds[len(out)], until))
			}
			st.rr = uint32(i + 1)
			st.served(b, t)
			if t.ready.len() > 0 {
				live++
			}
		}
	}
	b.c.lastSeen = now
	return out
}

// has reports whether t exists, is not paused and has ready jobs.
func (t *topic) has() bool {
	return t != nil && !t.paused && t.ready.len() > 0
}

// give leases the first ready job of t to b's consumer until the tick
// until, filling d.
func (st *state) give(b *Broker, t *topic, d *broker.Delivery, until int64) *broker.Delivery {
	e := t.ready.popFront()
	e.deliveries++
	e.state = stLeased
	e.holder = b.c
	e.at = until
	st.leases.pushBack(e)
	st.leased[e.seq] = e
	t.pending++
	d.Job = e.job
	d.Job.Attempt = e.attempt()
	d.Receipt = e.receipt
	detach(&d.Job)
	t.lastDelivered = e.receipt
	return d
}

// served records that b's consumer took jobs of t, and lets another waiter
// have t's leftovers.
func (st *state) served(b *Broker, t *topic) {
	if !hasReader(t.readers, b.c) {
		t.readers = append(t.readers, b.c)
	}
	if t.ready.len() > 0 {
		st.touch(t)
	}
}

// detach gives a delivered or listed job its own headers and failure, as a
// job decoded from Redis has, so that a handler writing to them cannot race
// with another delivery of the same job. The payload stays shared: handlers
// only read it.
func detach(j *job.Job) {
	if j.Headers != nil {
		j.Headers = maps.Clone(j.Headers)
	}
	if j.Failure != nil {
		f := *j.Failure
		j.Failure = &f
	}
}

func hasReader(rs []*consumer, c *consumer) bool {
	for _, r := range rs {
		if r == c {
			return true
		}
	}
	return false
}

// Fetch returns up to max ready jobs of topics, leased to b's consumer. When
// none is ready it waits up to Options.FetchWait for one, and returns an
// empty batch and a nil error if none came. Fetch returns ctx.Err() when ctx
// ends and [broker.ErrClosed] when b closes while it waits. Jobs of one topic
// come oldest first (redeliveries before unread jobs); when several topics
// have jobs, the topic looked at first rotates between calls. Paused topics
// (see [Broker.Pause]) are skipped.
//
// Each delivery has its own Headers map and Failure; its Payload shares the
// stored job's bytes and must not be modified.
func (b *Broker) Fetch(ctx context.Context, topics []string, max int) ([]*broker.Delivery, error) {
	return b.fetch(ctx, topics, max, func(now time.Time) []*broker.Delivery {
		return b.st.take(b, topics, max, now)
	})
}

// fetch is Fetch with take choosing the jobs (under st.mu).
func (b *Broker) fetch(ctx context.Context, topics []string, max int, take func(now time.Time) []*broker.Delivery) ([]*broker.Delivery, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(topics) == 0 || max <= 0 {
		return nil, errBadFetch
	}
	st := b.st
	st.mu.Lock()
	if b.closedLocked() {
		st.mu.Unlock()
		return nil, broker.ErrClosed
	}
	now := st.now()
	st.advance(now)
	ds := take(now)
	if len(ds) > 0 || st.fetchWait < 0 {
		st.flush(now)
		st.mu.Unlock()
		return ds, nil
	}
	w := st.pool.Get().(*waiter)
	w.topics, w.max = topics, max
	st.waiters.pushBack(w)
	st.flush(now)
	st.arm(now)
	st.mu.Unlock()

	w.timer.Reset(st.fetchWait)
	defer st.release(w)
	for {
		select {
		case <-w.ch:
			st.mu.Lock()
			w.signalled = false
			if b.closedLocked() {
				st.removeWaiter(w, now)
				st.mu.Unlock()
				return nil, broker.ErrClosed
			}
			now = st.now()
			st.advance(now)
			if ds = take(now); len(ds) > 0 {
				st.removeWaiter(w, now)
				st.mu.Unlock()
				return ds, nil
			}
			st.flush(now)
			st.mu.Unlock()
		case <-w.timer.C:
			st.mu.Lock()
			defer st.mu.Unlock()
			now = st.now()
			if b.closedLocked() {
				st.removeWaiter(w, now)
				return nil, broker.ErrClosed
			}
			st.advance(now)
			ds = take(now)
			st.removeWaiter(w, now)
			return ds, nil
		case <-ctx.Done():
			st.mu.Lock()
			st.removeWaiter(w, st.now())
			st.mu.Unlock()
			return nil, ctx.Err()
		case <-b.done:
			st.mu.Lock()
			st.removeWaiter(w, st.now())
			st.mu.Unlock()
			return nil, broker.ErrClosed
		case <-st.done:
			st.mu.Lock()
			st.removeWaiter(w, st.now())
			st.mu.Unlock()
			return nil, broker.ErrClosed
		}
	}
}

// leasedEntry returns the leased entry with receipt, or nil.
func (st *state) leasedEntry(receipt string) *entry {
	seq, ok := st.seqOf(receipt)
	if !ok {
		return nil
	}
	if e := st.leased[seq]; e != nil && e.receipt == receipt {
		return e
	}
	return nil
}

// settle finds the entry of d leased to c and takes it out of the lease
// list. An entry leased to another consumer (which took it after c's lease
// expired, and runs the job now) is not c's to settle.
func (st *state) settle(d *broker.Delivery, c *consumer) (*entry, error) {
	if d == nil {
		return nil, fmt.Errorf("%w: nil delivery", broker.ErrNotFound)
	}
	e := st.leasedEntry(d.Receipt)
	if e == nil {
		return nil, fmt.Errorf("%w: delivery %q is not leased (settled, or its lease expired)", broker.ErrNotFound, d.Receipt)
	}
	if e.holder != c {
		return nil, fmt.Errorf("%w: delivery %q is now leased to consumer %s, which took it after the lease expired and decides its outcome", broker.ErrNotFound, d.Receipt, e.holder.name)
	}
	st.unlease(e)
	return e, nil
}

// Ack settles ds as done under one lock. A delivery that is no longer leased
// (settled before, or redelivered after its lease expired and settled
// elsewhere) is ignored, as XACK ignores unknown IDs. The unique key of an
// acked job is released, or kept until UniqueFor after its EnqueuedAt.
func (b *Broker) Ack(ctx context.Context, ds ...*broker.Delivery) error {
	if err := b.lock(ctx); err != nil {
		return err
	}
	st := b.st
	defer st.mu.Unlock()
	var now time.Time
	for _, d := range ds {
		if d == nil {
			continue
		}
		if e := st.leasedEntry(d.Receipt); e != nil {
			st.unlease(e)
			if e.job.UniqueKey != "" {
				if now.IsZero() {
					now = st.now()
				}
				st.releaseClaim(&e.job, true, now)
			}
			e.job = job.Job{} // the entry may share a batch allocation
		}
	}
	return nil
}

// Retry re-enqueues d's job after delay as attempt d.Job.Attempt+1 with f
// recorded (Origin defaults to the topic, At to now). It returns an error
// wrapping [broker.ErrNotFound] when d is no longer leased.
func (b *Broker) Retry(ctx context.Context, d *broker.Delivery, delay time.Duration, f job.Failure) error {
	return b.requeue(ctx, d, delay, &f)
}

// Snooze re-enqueues d's job after delay keeping its attempt. It returns an
// error wrapping [broker.ErrNotFound] when d is no longer leased.
func (b *Broker) Snooze(ctx context.Context, d *broker.Delivery, delay time.Duration) error {
	return b.requeue(ctx, d, delay, nil)
}

func (b *Broker) requeue(ctx context.Context, d *broker.Delivery, delay time.Duration, f *job.Failure) error {
	if err := b.lock(ctx); err != nil {
		return err
	}
	st := b.st
	defer st.mu.Unlock()
	e, err := st.settle(d, b.c)
	if err != nil {
		return err
	}
	now := st.now()
	attempt := e.attempt()
	e.job.Attempt = attempt
	if f != nil {
		e.job.Attempt = broker.AddAttempts(attempt, 1)
		fc := *f
		if fc.Origin == "" {
			fc.Origin = e.topic.name
		}
		if fc.At.IsZero() {
			fc.At = now
		}
		e.job.Failure = &fc
	}
	e.deliveries = 0
	e.cancel = false
	e.receipt, e.seq = st.receipt()
	st.enqueue(e, e.topic, now.Add(delay), now)
	st.flush(now)
	st.arm(now)
	return nil
}

// DeadLetter moves d's job to its dead-letter topic with f recorded (Origin
// defaults to the topic, At to now), keeping its ID, payload, headers,
// attempt and EnqueuedAt. It returns an error wrapping [broker.ErrNotFound]
// when d is no longer leased.
func (b *Broker) DeadLetter(ctx context.Context, d *broker.Delivery, f job.Failure) error {
	if err := b.lock(ctx); err != nil {
		return err
	}
	st := b.st
	defer st.mu.Unlock()
	e, err := st.settle(d, b.c)
	if err != nil {
		return err
	}
	now := st.now()
	st.deadLetter(e, f, e.attempt(), now)
	st.flush(now)
	return nil
}

// Extend renews for a full lease the deliveries in ds that b's consumer still
// holds. If some are no longer held by it (settled, or expired and taken
// back), it renews the others and returns an error wrapping
// [broker.ErrNotFound].
func (b *Broker) Extend(ctx context.Context, ds ...*broker.Delivery) error {
	if err := b.lock(ctx); err != nil {
		return err
	}
	st := b.st
	defer st.mu.Unlock()
	until := st.tick(st.now()) + int64(st.lease)
	lost := 0
	for _, d := range ds {
		if d == nil {
			continue
		}
		e := st.leasedEntry(d.Receipt)
		if e == nil || e.holder != b.c {
			lost++
			continue
		}
		e.at = until
		st.leases.moveToBack(e)
	}
	if lost > 0 {
		return fmt.Errorf("%w: %d of %d deliveries are no longer leased to %s", broker.ErrNotFound, lost, len(ds), b.c.name)
	}
	return nil
}
