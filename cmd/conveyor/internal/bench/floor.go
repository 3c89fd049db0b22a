package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// floorGroup is the consumer group of the floor scenario.
const floorGroup = "bench"

// runFloor measures raw go-redis: pipelined XADD of N entries in batches of
// BatchSize (floor-publish), then FloorReaders goroutines reading with
// XREADGROUP COUNT BatchSize and settling each batch with one pipelined XACK
// + XDEL (floor). Only the consume phase counts towards floor: publishing is
// its own row.
func runFloor(ctx context.Context, e *env) error {
	n, size := e.cfg.N, e.cfg.PayloadSize
	ns := namespace("floor")
	defer func() { _ = e.cleanup(ns) }()
	key := ns + ":{floor}:stream"

	opts, err := goredis.ParseURL(e.url)
	if err != nil {
		return fmt.Errorf("bench: floor: %w", err)
	}
	rdb := goredis.NewClient(opts)
	defer rdb.Close()
	rt := &roundTrips{}
	rdb.AddHook(rt)
	if err := rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("bench: floor: %w", err)
	}

	// Publish.
	m := startMeter(e, rt)
	if err := floorPublish(ctx, rdb, key, n, size); err != nil {
		return fmt.Errorf("bench: floor: %w", err)
	}
	pub := m.end()
	if l, err := rdb.XLen(ctx, key).Result(); err != nil || l != int64(n) {
		return fmt.Errorf("bench: floor: stream holds %d entries after publishing %d (%v)", l, n, err)
	}
	e.report.add(ScenarioFloor, RowFloorPublish, "raw go-redis: XADD pipelined in batches of 100, one goroutine", result(n, pub))

	// Consume.
	if err := rdb.XGroupCreate(ctx, key, floorGroup, "0").Err(); err != nil {
		return fmt.Errorf("bench: floor: XGROUP CREATE: %w", err)
	}
	tr := newTracker(n)
	var (
		consumed atomic.Int64
		endOnce  sync.Once
		endAt    time.Time
		wg       sync.WaitGroup
		errMu    sync.Mutex
		firstErr error
	)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fail := func(err error) {
		errMu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		errMu.Unlock()
		cancel()
	}
	m = startMeter(e, rt)
	for r := range FloorReaders {
		wg.Go(func() {
			consumer := fmt.Sprintf("reader-%d", r)
			ids := make([]string, 0, BatchSize)
			for consumed.Load() < int64(n) && cctx.Err() == nil {
				streams, err := rdb.XReadGroup(cctx, &goredis.XReadGroupArgs{
					Group: floorGroup, Consumer: consumer, Streams: []string{key, ">"},
					Count: BatchSize, Block: e.cfg.FloorBlock,
				}).Result()
				if errors.Is(err, goredis.Nil) {
					continue
				}
				if err != nil {
					if cctx.Err() == nil {
						fail(fmt.Errorf("bench: floor: XREADGROUP: %w", err))
					}
					return
				}
				ids = ids[:0]
				for _, s := range streams {
					for _, msg := range s.Messages {
						p, _ := msg.Values["payload"].(string)
						tr.markString(p)
						ids = append(ids, msg.ID)
					}
				}
				if len(ids) == 0 {
					continue
				}
				pipe := rdb.Pipeline()
				pipe.XAck(cctx, key, floorGroup, ids...)
				pipe.XDel(cctx, key, ids...)
				if _, err := pipe.Exec(cctx); err != nil {
					fail(fmt.Errorf("bench: floor: XACK/XDEL: %w", err))
					return
				}
				if consumed.Add(int64(len(ids))) >= int64(n) {
					endOnce.Do(func() { endAt = time.Now() })
				}
			}
		})
	}
	wg.Wait()
	if firstErr == nil && endAt.IsZero() {
		firstErr = ctx.Err()
	}
	if firstErr != nil {
		m.end()
		return firstErr
	}
	if err := e.reportFloor(ctx, RowFloor, fmt.Sprintf("raw go-redis: %d readers, XREADGROUP COUNT 100 + pipelined XACK+XDEL", FloorReaders), m, endAt, tr, n, key); err != nil {
		return err
	}
	return e.floorWorkers(ctx, rdb, rt, ns+":{floor}:workers")
}

// floorPublish adds n entries of one payload field (size bytes, numbered
// for the tracker) to key with XADD, pipelined in batches of BatchSize.
func floorPublish(ctx context.Context, rdb *goredis.Client, key string, n, size int) error {
	payload := make([]byte, size)
	for i := 0; i < n; i += BatchSize {
		pipe := rdb.Pipeline()
		for j := i; j < min(i+BatchSize, n); j++ {
			fillPayload(payload, j, 0)
			pipe.XAdd(ctx, &goredis.XAddArgs{Stream: key, Values: []any{"payload", string(payload)}})
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("XADD: %w", err)
		}
	}
	return nil
}

// floorWorkers measures the smallest job-server shape on raw go-redis
// (floor-workers): N entries, published beforehand, read by one goroutine
// with XREADGROUP COUNT (the free workers), each entry handed to one of
// Concurrency worker goroutines, which hand its ID to one acknowledging
// goroutine that settles whatever has accumulated with one pipelined
// XACK+XDEL. No decoding, lease or middleware: what the hand-offs between
// a fetcher, workers and an acknowledger cost by themselves.
func (e *env) floorWorkers(ctx context.Context, rdb *goredis.Client, rt *roundTrips, key string) error {
	n, conc := e.cfg.N, e.cfg.Concurrency
	if err := floorPublish(ctx, rdb, key, n, e.cfg.PayloadSize); err != nil {
		return fmt.Errorf("bench: floor-workers: %w", err)
	}
	if err := rdb.XGroupCreate(ctx, key, floorGroup, "0").Err(); err != nil {
		return fmt.Errorf("bench: floor-workers: XGROUP CREATE: %w", err)
	}
	tr := newTracker(n)
	type entry struct{ id, payload string }
	jobs := make(chan entry, conc)
	acks := make(chan string, 4*conc)
	free := make(chan struct{}, conc)
	for range conc {
		free <- struct{}{}
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var workers sync.WaitGroup
	for range conc {
		workers.Go(func() {
			for j := range jobs {
				tr.markString(j.payload)
				select {
				case acks <- j.id:
				case <-cctx.Done(): // the acknowledger failed
				}
				free <- struct{}{}
			}
		})
	}
	m := startMeter(e, rt)
	ackErr := make(chan error, 1)
	var endAt time.Time
	go func() {
		ids := make([]string, 0, 4*conc)
		for acked := 0; acked < n; {
			var id string
			select {
			case id = <-acks:
			case <-cctx.Done():
				ackErr <- cctx.Err()
				return
			}
			ids = append(ids[:0], id)
		drain:
			for {
				select {
				case id := <-acks:
					ids = append(ids, id)
				default:
					break drain
				}
			}
			pipe := rdb.Pipeline()
			pipe.XAck(cctx, key, floorGroup, ids...)
			pipe.XDel(cctx, key, ids...)
			if _, err := pipe.Exec(cctx); err != nil {
				ackErr <- fmt.Errorf("bench: floor-workers: XACK/XDEL: %w", err)
				cancel()
				return
			}
			acked += len(ids)
		}
		endAt = time.Now()
		ackErr <- nil
	}()
	var readErr error
	for fetched := 0; fetched < n && readErr == nil && cctx.Err() == nil; {
		<-free
		want := 1
	more:
		for want < conc {
			select {
			case <-free:
				want++
			default:
				break more
			}
		}
		streams, err := rdb.XReadGroup(cctx, &goredis.XReadGroupArgs{
			Group: floorGroup, Consumer: "fetcher", Streams: []string{key, ">"},
			Count: int64(want), Block: e.cfg.FloorBlock,
		}).Result()
		if err != nil && !errors.Is(err, goredis.Nil) {
			if cctx.Err() == nil {
				readErr = fmt.Errorf("bench: floor-workers: XREADGROUP: %w", err)
			}
			break
		}
		got := 0
		for _, s := range streams {
			for _, msg := range s.Messages {
				p, _ := msg.Values["payload"].(string)
				jobs <- entry{msg.ID, p}
				got++
			}
		}
		fetched += got
		for range want - got {
			free <- struct{}{}
		}
	}
	if readErr != nil {
		cancel()
	}
	err := <-ackErr
	close(jobs)
	workers.Wait()
	if err = errors.Join(readErr, err); err != nil {
		m.end()
		return err
	}
	return e.reportFloor(ctx, RowFloorWorkers, fmt.Sprintf("raw go-redis: 1 reader, XREADGROUP COUNT free workers, %d worker goroutines, 1 acknowledger (pipelined XACK+XDEL)", conc), m, endAt, tr, n, key)
}

// reportFloor ends m's measurement at endAt and adds row (what it
// measures) to the report, once every one of the n entries of key reached
// tr and the stream is empty and has nothing pending.
func (e *env) reportFloor(ctx context.Context, row, what string, m *meter, endAt time.Time, tr *tracker, n int, key string) error {
	con := m.endAt(endAt)
	calls, missing := tr.count()
	if missing > 0 {
		return fmt.Errorf("bench: %s: %d of %d entries never consumed", row, missing, n)
	}
	if l, p, err := e.streamState(ctx, key, floorGroup); err != nil || l != 0 || p != 0 {
		return fmt.Errorf("bench: %s: after consuming, stream length %d, pending %d (%v)", row, l, p, err)
	}
	res := result(n, con)
	res.Processed = calls
	e.report.add(ScenarioFloor, row, what, res)
	return nil
}
