package bench

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
)

// Payload layout: a 10-digit sequence number, '.', a 19-digit publish time
// (Unix nanoseconds, zeros when unused), then 'x' up to the payload size.
// It stays readable in redis-cli.
const (
	seqDigits = 10
	tsOffset  = seqDigits + 1
	tsDigits  = 19
)

// fillPayload writes seq and ts into p (len(p) >= minPayload).
func fillPayload(p []byte, seq int, ts int64) {
	putDigits(p[:seqDigits], uint64(seq))
	p[seqDigits] = '.'
	putDigits(p[tsOffset:tsOffset+tsDigits], uint64(ts))
	for i := tsOffset + tsDigits; i < len(p); i++ {
		p[i] = 'x'
	}
}

// newPayload returns a payload of size bytes carrying seq and ts.
func newPayload(size, seq int, ts int64) []byte {
	p := make([]byte, size)
	fillPayload(p, seq, ts)
	return p
}

func putDigits(dst []byte, v uint64) {
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = byte('0' + v%10)
		v /= 10
	}
}

// getDigits parses p[from:to] as a decimal number.
func getDigits[T ~string | ~[]byte](p T, from, to int) (uint64, bool) {
	var v uint64
	for i := from; i < to; i++ {
		c := p[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, true
}

// payloadSeq returns the sequence number p carries.
func payloadSeq[T ~string | ~[]byte](p T) (int, bool) {
	if len(p) < minPayload {
		return 0, false
	}
	v, ok := getDigits(p, 0, seqDigits)
	return int(v), ok
}

// payloadTime returns the publish time p carries, in Unix nanoseconds.
func payloadTime[T ~string | ~[]byte](p T) (int64, bool) {
	if len(p) < minPayload {
		return 0, false
	}
	v, ok := getDigits(p, tsOffset, tsOffset+tsDigits)
	return int64(v), ok
}

// tracker counts, per job, how many times the handler ran it. Each job has
// its own counter, so workers do not contend on one cache line.
type tracker struct {
	seen  []atomic.Uint32
	stray atomic.Int64 // payloads that carried no valid sequence number
}

// newTracker returns a tracker of jobs 0..n-1. It writes to every page of
// its array at once, so that the pages are
// resident before a timed phase starts rather than faulted in as the jobs
// are marked, which would make the RSS samples grow with the jobs done.
func newTracker(n int) *tracker {
	t := &tracker{seen: make([]atomic.Uint32, n)}
	for i := 0; i < n; i += 1024 { // 4 KiB
		t.seen[i].Store(0)
	}
	return t
}

// mark records one handler call for the job with payload p.
func (t *tracker) mark(p []byte) { t.markSeq(payloadSeq(p)) }

// markString is mark for a payload held in a string.
func (t *tracker) markString(p string) { t.markSeq(payloadSeq(p)) }

func (t *tracker) markSeq(seq int, ok bool) {
	if !ok || seq >= len(t.seen) {
		t.stray.Add(1)
		return
	}
	t.seen[seq].Add(1)
}

// count returns the handler calls, and the jobs never run.
func (t *tracker) count() (calls int64, missing int) {
	for i := range t.seen {
		c := t.seen[i].Load()
		calls += int64(c)
		if c == 0 {
			missing++
		}
	}
	return calls + t.stray.Load(), missing
}

// ackWatch wraps a broker to learn when deliveries are acknowledged: the
// moment the broker's Ack returns, the jobs are settled in the store. It
// closes done when target jobs have been acknowledged and calls onAck, if
// set, with every acknowledged batch and its completion time.
type ackWatch struct {
	broker.Broker
	target int64
	onAck  func(ds []*broker.Delivery, at time.Time)

	acked  atomic.Int64
	once   sync.Once
	done   chan struct{}
	doneAt time.Time // set before done is closed
}

func newAckWatch(b broker.Broker, target int) *ackWatch {
	return &ackWatch{Broker: b, target: int64(target), done: make(chan struct{})}
}

// Ack acknowledges ds with the wrapped broker and counts them.
func (w *ackWatch) Ack(ctx context.Context, ds ...*broker.Delivery) error {
	if err := w.Broker.Ack(ctx, ds...); err != nil {
		return err
	}
	at := time.Now()
	if w.onAck != nil {
		w.onAck(ds, at)
	}
	if w.acked.Add(int64(len(ds))) >= w.target {
		w.once.Do(func() {
			w.doneAt = at
			close(w.done)
		})
	}
	return nil
}

// wait returns when target jobs have been acknowledged, with the time the
// last of them was; or an error when ctx ends or no job has been
// acknowledged for stall.
func (w *ackWatch) wait(ctx context.Context, stall time.Duration) (time.Time, error) {
	t := time.NewTicker(stall / 10)
	defer t.Stop()
	last, lastAt := w.acked.Load(), time.Now()
	for {
		select {
		case <-w.done:
			return w.doneAt, nil
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case now := <-t.C:
			if n := w.acked.Load(); n != last {
				last, lastAt = n, now
			} else if now.Sub(lastAt) > stall {
				return time.Time{}, &stallError{acked: n, target: w.target, for_: stall}
			}
		}
	}
}

type stallError struct {
	acked, target int64
	for_          time.Duration
}

func (e *stallError) Error() string {
	return "bench: stalled: " + itoa(e.acked) + " of " + itoa(e.target) + " jobs acknowledged and none for " + e.for_.String()
}

func itoa(v int64) string { return thousands(float64(v)) }
