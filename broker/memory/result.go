package memory

import (
	"context"
	"fmt"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/job"
)

// DefaultResultRetention is how long, by default, a memory broker keeps the
// result of a job acknowledged with one (Options.ResultRetention).
const DefaultResultRetention = 24 * time.Hour

var (
	_ broker.JobReader        = (*Broker)(nil)
	_ broker.ProgressRecorder = (*Broker)(nil)
	_ broker.ProgressReader   = (*Broker)(nil)
)

// results holds the results of acknowledged jobs until their retention
// ends, and the progress of running deliveries. Guarded by state.mu.
type results struct {
	retention time.Duration
	byJob     map[resultKey]*storedResult
	expiry    []expiring // in store order: ends are ascending for a clock that does not go back
	progress  map[string]broker.Progress
}

type resultKey struct{ topic, id string }

// storedResult is the outcome of a job acknowledged with a result.
type storedResult struct {
	result     []byte
	attempt    int
	enqueuedAt time.Time
	finishedAt time.Time
	expiresAt  time.Time
}

type expiring struct {
	key resultKey
	r   *storedResult
}

// storeResult keeps the result of e, a job acknowledged at now by d.
func (st *state) storeResult(e *entry, d *broker.Delivery, now time.Time) {
	rs := &st.res
	if rs.byJob == nil {
		rs.byJob = make(map[resultKey]*storedResult)
	}
	st.dropExpiredResults(now)
	r := &storedResult{
		result:     cloneBytes(d.Result),
		attempt:    e.attempt(),
		enqueuedAt: st.epoch.Add(time.Duration(e.enq)),
		finishedAt: now,
		expiresAt:  now.Add(rs.retention),
	}
	k := resultKey{e.topic.name, st.idOf(e)}
	rs.byJob[k] = r
	rs.expiry = append(rs.expiry, expiring{k, r})
}

// dropExpiredResults deletes the results whose retention ended by now.
func (st *state) dropExpiredResults(now time.Time) {
	rs := &st.res
	n := 0
	for n < len(rs.expiry) && !now.Before(rs.expiry[n].r.expiresAt) {
		x := rs.expiry[n]
		if rs.byJob[x.key] == x.r {
			delete(rs.byJob, x.key)
		}
		n++
	}
	if n > 0 {
		clear(rs.expiry[:n])
		rs.expiry = rs.expiry[n:]
	}
}

// RecordProgress stores the progress of each update's delivery while it is
// leased; an update of a delivery no longer leased is ignored. The
// progress of a delivery is reported (by JobState and ProgressOf) only
// while the delivery is leased: a retry, a snooze, an ack or a lost lease
// ends it. It implements broker.ProgressRecorder.
func (b *Broker) RecordProgress(ctx context.Context, us ...broker.ProgressUpdate) error {
	if err := b.lock(ctx); err != nil {
		return err
	}
	st := b.st
	defer st.mu.Unlock()
	rs := &st.res
	if rs.progress == nil {
		rs.progress = make(map[string]broker.Progress)
	}
	for _, u := range us {
		if u.Delivery == nil || st.leasedEntry(u.Delivery.Receipt) == nil {
			continue
		}
		rs.progress[u.Delivery.Receipt] = u.Progress
	}
	if len(rs.progress) > 2*len(st.leased)+64 {
		// Forget the progress of deliveries settled since.
		for r := range rs.progress {
			if st.leasedEntry(r) == nil {
				delete(rs.progress, r)
			}
		}
	}
	return nil
}

// progressOf returns the progress of the delivery with receipt of topic t,
// if it is leased and reported progress.
func (st *state) progressOf(t *topic, receipt string) (broker.Progress, bool) {
	l := st.leasedEntry(receipt)
	if l == nil || l.e.topic != t {
		return broker.Progress{}, false
	}
	p, ok := st.res.progress[receipt]
	return p, ok
}

// ProgressOf returns the progress of the leased deliveries of topic with
// the given receipts. It implements broker.ProgressReader.
func (b *Broker) ProgressOf(ctx context.Context, topic string, receipts []string) (map[string]broker.Progress, error) {
	if err := b.lock(ctx); err != nil {
		return nil, err
	}
	st := b.st
	defer st.mu.Unlock()
	out := map[string]broker.Progress{}
	t := st.topics[topic]
	if t == nil {
		return out, nil
	}
	for _, r := range receipts {
		if p, ok := st.progressOf(t, r); ok {
			out[r] = p
		}
	}
	return out, nil
}

// JobState returns the state of the job of topic with ID id: delayed,
// queued or running while the topic holds it (an id that names no job but
// the receipt of one of topic's entries names that entry's job), succeeded
// while its result is kept (Options.ResultRetention after its ack), dead
// while it is a dead letter of topic. It returns an error wrapping
// broker.ErrNotFound otherwise. It implements broker.JobReader.
func (b *Broker) JobState(ctx context.Context, topic, id string) (*broker.JobState, error) {
	st, now, err := b.lockCurrent(ctx)
	if err != nil {
		return nil, err
	}
	defer st.mu.Unlock()
	js := &broker.JobState{ID: id, Topic: topic}
	t := st.topics[topic]
	if e := st.find(t, id); e != nil {
		st.describe(js, e)
		switch e.state {
		case stLeased:
			js.State = broker.StateRunning
			js.Attempt = e.attempt()
			if p, ok := st.progressOf(t, js.Receipt); ok {
				js.Progress = &p
			}
		case stDelayed:
			// A delayed entry has no deliveries (its n is its heap index).
			js.State = broker.StateDelayed
			js.Attempt = e.recorded()
			js.Due = st.epoch.Add(time.Duration(e.at))
		default:
			// Its next delivery's attempt.
			js.State = broker.StateQueued
			js.Attempt = broker.AddAttempts(e.recorded(), int64(e.deliveries()))
		}
		return js, nil
	}
	st.dropExpiredResults(now)
	if r := st.res.byJob[resultKey{topic, id}]; r != nil {
		js.State = broker.StateSucceeded
		js.Attempt = r.attempt
		js.Result = cloneBytes(r.result)
		js.EnqueuedAt = r.enqueuedAt
		js.FinishedAt = r.finishedAt
		js.ExpiresAt = r.expiresAt
		return js, nil
	}
	if e := st.find(st.topics[job.DeadLetterTopic(topic)], id); e != nil {
		st.describe(js, e)
		js.State = broker.StateDead
		js.Attempt = e.recorded()
		if js.Failure != nil {
			js.FinishedAt = js.Failure.At
		}
		return js, nil
	}
	return nil, fmt.Errorf("%w: job %q of %q: not queued, delayed, running or dead-lettered, and no result is kept for it (a job acknowledged without a result is not kept; a result is kept for %v after the job succeeded)",
		broker.ErrNotFound, id, topic, st.res.retention)
}

// describe sets the ID, receipt, EnqueuedAt and failure of js from e.
func (st *state) describe(js *broker.JobState, e *entry) {
	js.ID = st.idOf(e)
	js.Receipt = st.receiptOf(e.seq)
	js.EnqueuedAt = st.epoch.Add(time.Duration(e.enq))
	if e.x != nil {
		js.Failure = cloneFailure(e.x.failure)
	}
}

func cloneFailure(f *job.Failure) *job.Failure {
	if f == nil {
		return nil
	}
	c := *f
	return &c
}
