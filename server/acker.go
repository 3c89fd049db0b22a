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
	urgent  bool          // a pending ack is for a job past its first attempt
	kick    chan struct{} // buffered 1: a batch started or filled up, or urgent
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
//
// The acknowledgement of a job past its first attempt is urgent: it is sent at
// once with whatever is pending. Such a job may have been redelivered after a
// crash, next to a job that crashes its worker every time; holding its ack
// for a batch would let the next crash redeliver it again, until it reached
// the delivery limit and was dead-lettered although it had succeeded.
func (q *ackQueue) add(d *broker.Delivery) {
	q.mu.Lock()
	for len(q.pending) >= q.limit {
		q.space.Wait()
	}
	q.pending = append(q.pending, d)
	n := len(q.pending)
	urgent := d.Job.Attempt > 1
	q.urgent = q.urgent || urgent
	q.mu.Unlock()
	if n == 1 || n == q.batch || urgent {
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
	q.urgent = false
	if n > 0 {
		q.space.Broadcast()
	}
	return buf, rest
}

// state returns how many acks are pending and whether one of them is urgent.
func (q *ackQueue) state() (int, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.pending), q.urgent
}

// acker sends the queued acknowledgements in batches of up to AckBatch. With
// AckInterval zero it sends whatever is pending as soon as it is free, so
// that the acknowledgements arriving during one Ack call make the next batch
// (group commit); with AckInterval positive each acknowledgement waits at
// most that long for its batch to fill. When stop is closed (after the
// workers are done) it flushes everything left and returns.
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
		n, urgent := q.state()
		if n == 0 {
			continue // a stale kick
		}
		if s.opts.AckInterval == 0 {
			// Send what is pending at once. What arrives during the Ack
			// call is sent by the next one, so batches grow with the load
			// and an acknowledgement waits for at most one call before
			// its own.
			drain()
			continue
		}
		// A batch has started: send it when it is full, when one of its
		// acknowledgements is urgent, or when its first acknowledgement has
		// waited AckInterval.
		timer.Reset(s.opts.AckInterval)
		for n > 0 {
			if n < s.opts.AckBatch && !urgent {
				select {
				case <-q.kick:
					if n, urgent = q.state(); n < s.opts.AckBatch && !urgent {
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
				_, urgent = q.state()
				// What arrived during the Ack call starts the next batch.
				timer.Reset(s.opts.AckInterval)
			}
		}
		timer.Stop()
	}
}
