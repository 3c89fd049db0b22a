package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	promclient "github.com/prometheus/client_golang/prometheus"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/memory"
	"github.com/conveyor-jobs/conveyor/broker/redis"
	"github.com/conveyor-jobs/conveyor/contrib/prometheus"
	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/middleware"
	"github.com/conveyor-jobs/conveyor/server"
)

// runProcess measures a conveyor server on the Redis broker processing N
// pre-enqueued jobs with a no-op handler and no middleware.
func runProcess(ctx context.Context, e *env) error {
	return e.processRedis(ctx, ScenarioProcess, RowProcess, "conveyor server on Redis, no-op handler, no middleware", nil)
}

// runProcessStack is runProcess with the recommended middleware stack.
func runProcessStack(ctx context.Context, e *env) error {
	mw, err := recommendedStack()
	if err != nil {
		return err
	}
	return e.processRedis(ctx, ScenarioProcessStack, RowProcessStack,
		"as process, with middleware.Default: logging (warn, discarded), Prometheus metrics, dead-letter, retry, timeout, recover", mw)
}

// runMemory measures the server processing N pre-enqueued jobs on the
// in-memory broker, no middleware.
func runMemory(ctx context.Context, e *env) error {
	b := memory.New(nil)
	defer b.Close()
	res, err := e.process(ctx, b, nil, nil)
	if err != nil {
		return fmt.Errorf("bench: %s: %w", RowMemory, err)
	}
	e.report.add(ScenarioMemory, RowMemory, "conveyor server on the in-memory broker, no-op handler, no middleware", res)
	return nil
}

// recommendedStack returns middleware.Default with logging at warn level to
// a discarding handler (successes are not formatted), metrics to a
// Prometheus recorder on a private registry, the default retry and
// dead-letter policy, and a one-minute timeout.
func recommendedStack() (job.Middleware, error) {
	rec, err := prometheus.NewRecorder(promclient.NewRegistry(), nil)
	if err != nil {
		return nil, fmt.Errorf("bench: prometheus recorder: %w", err)
	}
	return middleware.Default(&middleware.DefaultOptions{
		Logger:   slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Recorder: rec,
		Timeout:  time.Minute,
	}), nil
}

func (e *env) processRedis(ctx context.Context, scenario, row, what string, mw job.Middleware) error {
	rt := &roundTrips{}
	b, release, err := e.openRedis(scenario, rt)
	if err != nil {
		return err
	}
	defer release()
	if n := e.cfg.Partitions; n > 1 {
		if err := b.SetPartitions(ctx, benchTopic, n); err != nil {
			return fmt.Errorf("bench: %s: %w", row, err)
		}
		if err := awaitRetired(ctx, b, benchTopic); err != nil {
			return fmt.Errorf("bench: %s: %w", row, err)
		}
		what += fmt.Sprintf(", topic of %d partitions", n)
	}
	res, err := e.process(ctx, b, mw, rt)
	if err != nil {
		return fmt.Errorf("bench: %s: %w", row, err)
	}
	e.report.add(scenario, row, what, res)
	return nil
}

// awaitRetired waits until the layout that SetPartitions retired on topic
// (its one partition) is dropped from b's registry, fetching from the empty
// topic meanwhile (a Fetch drops drained layouts, at the earliest a few
// seconds after the change): until then every Fetch also reads the retired
// layout, and the run would measure the minutes after a change of count,
// not a topic of N partitions.
func awaitRetired(ctx context.Context, b *redis.Broker, topic string) error {
	key, field := b.Options().Namespace+":partitions", "{retiring}"+topic
	deadline := time.Now().Add(time.Minute)
	for {
		n, err := b.Client().HExists(ctx, key, field).Result()
		if err != nil {
			return err
		}
		if !n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the layout %q retired is still registered after a minute", topic)
		}
		ds, err := b.Fetch(ctx, []string{topic}, 1)
		if err != nil {
			return err
		}
		if len(ds) > 0 {
			return fmt.Errorf("a job in %q before the run", topic)
		}
	}
}

// process enqueues N jobs on b (untimed), then times a server from Run until
// the broker has acknowledged all of them, and checks that every job ran and
// the topic is empty. rt counts b's round trips (nil for no Redis).
func (e *env) process(ctx context.Context, b broker.Broker, mw job.Middleware, rt *roundTrips) (RunResult, error) {
	n := e.cfg.N
	if err := enqueue(ctx, b, n, e.cfg.PayloadSize); err != nil {
		return RunResult{}, err
	}
	tr := newTracker(n)
	mux := job.NewMux()
	if mw != nil {
		mux.Use(mw)
	}
	mux.HandleFunc(benchTopic, func(_ context.Context, j *job.Job) error {
		tr.mark(j.Payload)
		return nil
	})
	w := newAckWatch(b, n)
	rss := newRSSSampler(n, e.cfg.RSSSamples)
	if rss != nil {
		w.onAck = func(ds []*broker.Delivery, _ time.Time) { rss.acknowledged(len(ds)) }
	}
	srv, err := server.New(w, mux, &server.Options{Concurrency: e.cfg.Concurrency, Logger: e.quiet})
	if err != nil {
		return RunResult{}, err
	}
	res, _, err := e.drain(ctx, srv, w, rt, tr, benchTopic)
	res.RSSSamples = rss.result()
	return res, err
}
