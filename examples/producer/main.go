// Command producer publishes jobs to Redis from Go: one job with headers, a
// delayed job, and a batch of jobs in one round trip per few hundred.
//
//	REDIS_URL=redis://localhost:6379/0 go run ./examples/producer
//
// REDIS_NAMESPACE must match the workers' (default "conveyor"). Any client
// can publish too: a stream entry with a "payload" field is a job, so
//
//	redis-cli XADD 'conveyor:{orchestrate}:stream' '*' payload '{"prompt":"hi","steps":1}'
//
// enqueues the same job as the first one below.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/redis"
	"github.com/conveyor-jobs/conveyor/config"
)

// Orchestrate is the payload the orchestrate-worker example handles.
type Orchestrate struct {
	Prompt string `json:"prompt"`
	Steps  int    `json:"steps"`
}

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run(ctx, os.Getenv("REDIS_URL"), os.Getenv("REDIS_NAMESPACE"), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "producer:", err)
		os.Exit(1)
	}
}

// run publishes the example jobs to the Redis at url and reports their IDs
// to w.
func run(ctx context.Context, url, namespace string, w io.Writer) error {
	if url == "" {
		return errors.New("REDIS_URL is not set (for example redis://default:PASSWORD@localhost:6379/0)")
	}
	b, err := redis.Open(url, &redis.Options{Namespace: namespace})
	if err != nil {
		return fmt.Errorf("%w\nwhat to do: %s", err, config.Diagnose(err, url))
	}
	defer b.Close()
	// A Producer publishes through publish middleware (metrics, tracing,
	// validation); with none, it calls the broker directly. A typed
	// publisher encodes each Orchestrate as JSON, as the worker's
	// job.Typed handler decodes it.
	p := broker.NewProducer(b)
	orchestrate := broker.NewTypedPublisher[Orchestrate](p, "orchestrate", nil)
	task := Orchestrate{Prompt: "summarise the incident report", Steps: 3}

	// One job. Headers carry metadata such as the tenant, which the rate
	// limiter of the worker reads.
	id, err := orchestrate.Publish(ctx, task, &broker.PublishOptions{Headers: map[string]string{"tenant": "acme"}})
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "published", id)

	// A job due in one minute: it waits in the delayed set until then.
	id, err = orchestrate.Publish(ctx, task, &broker.PublishOptions{Delay: time.Minute})
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "scheduled", id, "in 1m")

	// A batch: one call, pipelined, IDs returned in order. Its jobs have
	// headers of their own, so the typed publisher builds the messages and
	// the producer publishes them.
	batch := make([]broker.Message, 100)
	for i := range batch {
		batch[i], err = orchestrate.Message(Orchestrate{Prompt: fmt.Sprintf("document %d", i), Steps: 1},
			&broker.PublishOptions{Headers: map[string]string{"tenant": fmt.Sprintf("tenant-%d", i%4)}})
		if err != nil {
			return err
		}
	}
	ids, err := p.PublishBatch(ctx, batch)
	if err != nil {
		// On a partial failure (*broker.BatchError) the jobs not enqueued
		// have no ID: publish those again, not the whole batch.
		published := len(slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return id == "" }))
		return fmt.Errorf("batch: %d of %d published: %w", published, len(batch), err)
	}
	fmt.Fprintf(w, "published a batch of %d jobs (%s … %s)\n", len(ids), ids[0], ids[len(ids)-1])
	return nil
}
