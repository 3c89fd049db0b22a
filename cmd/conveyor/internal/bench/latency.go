package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/server"
)

// runLatency publishes min(N, LatencyJobs) jobs one at a time at Rate per
// second while a server (Redis broker, no middleware) runs. Each payload
// carries its publish time; the handler records publish → handler start,
// and a wrapper around the broker records publish → the moment the
// broker's Ack (XACK + XDEL) returned. Before it, raw go-redis at the same
// rate gives the floor of the first (row floor-latency).
// Then it does the same at each of LatencyRates, as rows
// floor-latency-<rate>, latency-<rate> and latency-ack-<rate>.
func runLatency(ctx context.Context, e *env) error {
	if err := e.floorLatencyAt(ctx, e.cfg.Rate, RowFloorLatency); err != nil {
		return err
	}
	if err := e.latencyAt(ctx, e.cfg.Rate, RowLatency, RowLatencyAck); err != nil {
		return err
	}
	for _, rate := range e.cfg.LatencyRates {
		if err := e.floorLatencyAt(ctx, rate, latencyRow(RowFloorLatency, rate)); err != nil {
			return err
		}
		if err := e.latencyAt(ctx, rate, latencyRow(RowLatency, rate), latencyRow(RowLatencyAck, rate)); err != nil {
			return err
		}
	}
	return nil
}

// latencyRow names the row of a latency measured at another rate than
// Config.Rate: base-<rate>.
func latencyRow(base string, rate int) string {
	return base + "-" + strconv.Itoa(rate)
}

// latencyRate returns the rate of a row named by latencyRow.
func latencyRate(name string) (int, bool) {
	for _, base := range []string{RowLatencyAck, RowLatency, RowFloorLatency} {
		if r, ok := strings.CutPrefix(name, base+"-"); ok {
			rate, err := strconv.Atoi(r)
			return rate, err == nil && rate > 0
		}
	}
	return 0, false
}

// latencyAt is the latency measurement at rate jobs per second, reported
// as the rows row and rowAck.
func (e *env) latencyAt(ctx context.Context, rate int, row, rowAck string) error {
	n := min(e.cfg.N, e.cfg.LatencyJobs)
	rt := &roundTrips{}
	b, release, err := e.openRedis("latency", rt)
	if err != nil {
		return err
	}
	defer release()

	warm := n // sequence number of the warm-up job, not measured
	start := make([]atomic.Int64, n+1)
	acked := make([]atomic.Int64, n+1)
	mux := job.NewMux()
	mux.HandleFunc(benchTopic, func(_ context.Context, j *job.Job) error {
		stamp(start, j.Payload, time.Now())
		return nil
	})
	w := newAckWatch(b, n+1)
	w.onAck = func(ds []*broker.Delivery, at time.Time) {
		for _, d := range ds {
			stamp(acked, d.Job.Payload, at)
		}
	}
	srv, err := server.New(w, mux, &server.Options{Concurrency: e.cfg.Concurrency, Logger: e.quiet})
	if err != nil {
		return err
	}
	run := serve(ctx, srv)
	fail := func(err error) error {
		return fmt.Errorf("bench: latency: %w", run.stop(err))
	}

	// Warm up: one job through the whole path, so that the group exists and
	// the connections are open before the clock starts.
	if _, err := b.Publish(ctx, broker.Message{Topic: benchTopic, Payload: newPayload(e.cfg.PayloadSize, warm, time.Now().UnixNano())}); err != nil {
		return fail(err)
	}
	deadline := time.Now().Add(stallTimeout)
	for acked[warm].Load() == 0 {
		if time.Now().After(deadline) {
			return fail(errors.New("the warm-up job was not acknowledged"))
		}
		time.Sleep(time.Millisecond)
	}

	meas, err := e.publishPaced(ctx, w, rt, n, rate, func(i int) broker.Message {
		return broker.Message{Topic: benchTopic, Payload: newPayload(e.cfg.PayloadSize, i, time.Now().UnixNano())}
	})
	if err := run.stop(err); err != nil {
		return fmt.Errorf("bench: latency: %w", err)
	}

	toStart, err := collect(start[:n])
	if err != nil {
		return fmt.Errorf("bench: latency: handler start: %w", err)
	}
	toAck, err := collect(acked[:n])
	if err != nil {
		return fmt.Errorf("bench: latency: ack: %w", err)
	}
	what := fmt.Sprintf("%d jobs published one at a time at %d/s (%d publishing goroutines), server on Redis: publish -> handler start", n, rate, pacedPublishers(rate))
	res := result(n, meas)
	setPercentiles(&res, toStart)
	e.report.add(ScenarioLatency, row, what, res)
	res = result(n, meas)
	setPercentiles(&res, toAck)
	e.report.add(ScenarioLatency, rowAck, fmt.Sprintf("same jobs (%d/s): publish -> broker Ack (XACK+XDEL) returned", rate), res)
	return nil
}

// floorLatencyAt measures raw go-redis at rate jobs per second, as the row
// row: after one warm-up entry, min(N, LatencyJobs) entries of one payload
// field, each XADDed when due (see pace), and one goroutine reading them
// with XREADGROUP BLOCK COUNT Concurrency, which stamps each entry when its
// reply has been read and settles the batch with one pipelined XACK +
// XDEL; it stops the publishers when it fails. Publish → read is what any job server on go-redis waits
// before it can start a job; the latency row adds decoding, the hand-off
// to a worker goroutine and the handler call.
func (e *env) floorLatencyAt(ctx context.Context, rate int, row string) error {
	n := min(e.cfg.N, e.cfg.LatencyJobs)
	ns := namespace("floor-latency")
	defer func() { _ = e.cleanup(ns) }()
	key := ns + ":{floor}:latency"
	fail := func(err error) error { return fmt.Errorf("bench: %s: %w", row, err) }

	opts, err := goredis.ParseURL(e.url)
	if err != nil {
		return fail(err)
	}
	// Connections for the reader and every publisher.
	opts.MinIdleConns = pacedPublishers(rate) + 1
	rdb := goredis.NewClient(opts)
	defer rdb.Close()
	rt := &roundTrips{}
	rdb.AddHook(rt)
	if err := rdb.XGroupCreateMkStream(ctx, key, floorGroup, "$").Err(); err != nil {
		return fail(fmt.Errorf("XGROUP CREATE: %w", err))
	}

	got := make([]atomic.Int64, n)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var doneAt time.Time
	readErr := make(chan error, 1)
	read := func() error {
		ids := make([]string, 0, e.cfg.Concurrency)
		for seen := 0; seen < n; {
			streams, err := rdb.XReadGroup(rctx, &goredis.XReadGroupArgs{
				Group: floorGroup, Consumer: "reader", Streams: []string{key, ">"},
				Count: int64(e.cfg.Concurrency), Block: e.cfg.FloorBlock,
			}).Result()
			at := time.Now()
			if err := rctx.Err(); err != nil {
				return err
			}
			if errors.Is(err, goredis.Nil) {
				continue
			}
			if err != nil {
				return fmt.Errorf("XREADGROUP: %w", err)
			}
			ids = ids[:0]
			for _, s := range streams {
				for _, msg := range s.Messages {
					p, _ := msg.Values["payload"].(string)
					stamp(got, p, at)
					ids = append(ids, msg.ID)
				}
			}
			if len(ids) == 0 {
				continue
			}
			pipe := rdb.Pipeline()
			pipe.XAck(rctx, key, floorGroup, ids...)
			pipe.XDel(rctx, key, ids...)
			if _, err := pipe.Exec(rctx); err != nil {
				return fmt.Errorf("XACK/XDEL: %w", err)
			}
			seen += len(ids)
		}
		doneAt = time.Now()
		return nil
	}

	// Warm-up: one entry through the whole path, as the server's warm-up
	// job, so that the connections are open before the clock starts.
	if err := rdb.XAdd(ctx, &goredis.XAddArgs{Stream: key, Values: []any{"payload", newPayload(e.cfg.PayloadSize, n, 0)}}).Err(); err != nil {
		return fail(err)
	}
	warm, err := rdb.XReadGroup(ctx, &goredis.XReadGroupArgs{
		Group: floorGroup, Consumer: "reader", Streams: []string{key, ">"}, Count: 1, Block: e.cfg.FloorBlock,
	}).Result()
	if err != nil || len(warm) != 1 || len(warm[0].Messages) != 1 {
		return fail(fmt.Errorf("warm-up read: %v", err))
	}
	if err := rdb.XAck(ctx, key, floorGroup, warm[0].Messages[0].ID).Err(); err != nil {
		return fail(err)
	}

	go func() {
		err := read()
		if err != nil {
			cancel() // stop publishing
		}
		readErr <- err
	}()
	m := startMeter(e, rt)
	perr := pace(m.start, n, rate, func(i int) error {
		if err := rctx.Err(); err != nil {
			return err
		}
		payload := newPayload(e.cfg.PayloadSize, i, time.Now().UnixNano())
		return rdb.XAdd(ctx, &goredis.XAddArgs{Stream: key, Values: []any{"payload", payload}}).Err()
	})
	var rerr error
	if perr == nil {
		select {
		case rerr = <-readErr:
		case <-time.After(stallTimeout):
			cancel()
			rerr = errors.Join(fmt.Errorf("%d entries not read after %v", n, stallTimeout), <-readErr)
		}
	} else {
		cancel()
		rerr = <-readErr
	}
	if err := errors.Join(rerr, perr); err != nil {
		m.end()
		return fail(err)
	}
	meas := m.endAt(doneAt)
	lat, err := collect(got)
	if err != nil {
		return fail(err)
	}
	res := result(n, meas)
	setPercentiles(&res, lat)
	e.report.add(ScenarioLatency, row, fmt.Sprintf("raw go-redis: %d entries XADDed one at a time at %d/s (%d publishing goroutines), 1 reader XREADGROUP BLOCK COUNT %d: XADD -> reply read", n, rate, pacedPublishers(rate), e.cfg.Concurrency), res)
	return nil
}

// stamp records in dst, at the payload's sequence number, the time from
// the publish time p carries to at; payloads of other runs (a warm-up's
// sequence number is len(dst)) are ignored.
func stamp[T ~string | ~[]byte](dst []atomic.Int64, p T, at time.Time) {
	seq, ok1 := payloadSeq(p)
	ts, ok2 := payloadTime(p)
	if ok1 && ok2 && seq < len(dst) {
		dst[seq].Store(at.UnixNano() - ts)
	}
}

// collect returns the recorded latencies, sorted; it fails when a job has
// none (it never ran).
func collect(src []atomic.Int64) ([]time.Duration, error) {
	out := make([]time.Duration, len(src))
	missing := 0
	for i := range src {
		v := src[i].Load()
		if v == 0 {
			missing++
		}
		out[i] = time.Duration(v)
	}
	if missing > 0 {
		return nil, fmt.Errorf("%d of %d jobs have no measurement", missing, len(src))
	}
	slices.Sort(out)
	return out, nil
}

// percentile returns the q-quantile (0 < q <= 1) of sorted by the
// nearest-rank method.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}

func setPercentiles(r *RunResult, sorted []time.Duration) {
	msOf := func(d time.Duration) *float64 {
		v := float64(d) / float64(time.Millisecond)
		return &v
	}
	r.P50Ms = msOf(percentile(sorted, 0.50))
	r.P90Ms = msOf(percentile(sorted, 0.90))
	r.P99Ms = msOf(percentile(sorted, 0.99))
	r.MaxMs = msOf(sorted[len(sorted)-1])
}
