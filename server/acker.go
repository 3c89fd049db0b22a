package server

import (
	"context"
	"sync"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
)

// ackQueue collects the deliveries workers acknowledge, for the acker to
// send in batches. Workers append under a mutex and wake the acker only when
// a batch starts or fills, not for every job.
type ackQueue struct {
	mu      sync.Mutex
	space   sync.Cond // signalled when the acker takes a batch
	pending []*broker.Delivery
	limit   int           // workers wait while this many acks are pending
	batch   int           // AckBatch
	kick    chan struct{} // buffered 1: a batch started or filled up
}

func newAckQueue(batch int) *ackQueue {
	q := &ackQueue{
		pending: make([]*broker.Delivery, 0, 4*batch),
		limit:   4 * batch,
		batch:   batch,
		kick:    make(chan struct{}, 1),
	}
	q.space.L = &q.mu
	return q
}

// add queues d for acknowledgement. It blocks while the acker is too far
// behind, so that a slow broker slows the workers down instead of letting
// acknowledgements pile up past their leases.
func (q *ackQueue) add(d *broker.Delivery) {
	q.mu.Lock()
	for len(q.pending) >= q.limit {
		q.space.Wait()
	}
	q.pending = append(q.pending, d)
	n := len(q.pending)
	q.mu.Unlock()
	if n == 1 || n == q.batch {
		select {
		case q.kick <- struct{}{}:
		default:
		}
	}
}

// take moves up to max pending deliveries into buf and returns it and how
// many are still pending.
func (q *ackQueue) take(buf []*broker.Delivery) ([]*broker.Delivery, int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := min(len(q.pending), cap(buf))
	buf = append(buf[:0], q.pending[:n]...)
	rest := copy(q.pending, q.pending[n:])
	clear(q.pending[rest:])
	q.pending = q.pending[:rest]
	if n > 0 {
		q.space.Broadcast()
	}
	return buf, rest
}

func (q *ackQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.pending)
}

// acker sends the queued acknowledgements in batches of up to AckBatch, each
// acknowledgement waiting at most AckInterval for its batch to fill. When
// stop is closed (after the workers are done) it flushes everything left and
// returns.
func (s *Server) acker(ctx context.Context, q *ackQueue, stop <-chan struct{}) {
	buf := make([]*broker.Delivery, 0, s.opts.AckBatch)
	flush := func() int {
		var rest int
		buf, rest = q.take(buf)
		if len(buf) == 0 {
			return rest
		}
		if err := s.b.Ack(ctx, buf...); err != nil {
			s.stats.settleErrors.Add(int64(len(buf)))
			s.log.Error("conveyor: acknowledging jobs failed: they stay pending and are redelivered after their lease",
				"jobs", len(buf), "first_job_id", buf[0].Job.ID, "error", err)
		} else {
			s.stats.acked.Add(int64(len(buf)))
		}
		clear(buf)
		return rest
	}
	drain := func() {
		for flush() > 0 {
		}
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-q.kick:
		case <-stop:
			drain()
			return
		}
		n := q.len()
		if n == 0 {
			continue // a stale kick
		}
		// A batch has started: send it when it is full or when its first
		// acknowledgement has waited AckInterval.
		timer.Reset(s.opts.AckInterval)
		for n > 0 {
			if n < s.opts.AckBatch {
				select {
				case <-q.kick:
					if n = q.len(); n < s.opts.AckBatch {
						continue
					}
				case <-timer.C:
				case <-stop:
					timer.Stop()
					drain()
					return
				}
			}
			if n = flush(); n > 0 {
				// What arrived during the Ack call starts the next batch.
				timer.Reset(s.opts.AckInterval)
			}
		}
		timer.Stop()
	}
}
