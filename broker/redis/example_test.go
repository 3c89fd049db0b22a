package redis_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/redis"
	"github.com/conveyor-jobs/conveyor/job"
)

// Open a broker from REDIS_URL, publish a job, fetch it and settle it.
func Example() {
	b, err := redis.Open(os.Getenv("REDIS_URL"), &redis.Options{Namespace: "agents"})
	if err != nil {
		log.Fatal(err) // explains TLS, auth and reachability problems, without the password
	}
	defer b.Close()
	ctx := context.Background()

	if _, err := b.Publish(ctx, broker.Message{
		Topic:   "orchestrate",
		Payload: []byte(`{"ticket":42}`),
		Headers: map[string]string{"tenant": "acme"},
	}); err != nil {
		log.Fatal(err)
	}
	ds, err := b.Fetch(ctx, []string{"orchestrate"}, 10)
	if err != nil {
		log.Fatal(err)
	}
	for _, d := range ds {
		if err := process(d.Job); err != nil {
			// Re-enqueued as the next attempt in one atomic step.
			_ = b.Retry(ctx, d, 5*time.Second, job.FailureOf(&d.Job, err, job.ReasonError, time.Now()))
			continue
		}
		_ = b.Ack(ctx, d)
	}
}

func process(j job.Job) error { return nil }

// Passwords never reach logs or errors: URLs are printed redacted.
func ExampleRedactURL() {
	fmt.Println(redis.RedactURL("rediss://worker:s3cret@redis.internal:6380/0"))
	// Output: rediss://worker:xxxxx@redis.internal:6380/0
}

// Dead letters can be listed and replayed: the broker is a
// broker.DeadLetterAdmin.
func ExampleBroker_ReplayDeadLetters() {
	b, err := redis.Open(os.Getenv("REDIS_URL"), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	dls, err := b.DeadLetters(ctx, "orchestrate", "", 20)
	if err != nil {
		log.Fatal(err)
	}
	for _, dl := range dls {
		fmt.Println(dl.ID, dl.Job.ID, dl.Job.Failure.Reason, dl.Job.Failure.Error)
	}
	n, err := b.ReplayDeadLetters(ctx, "orchestrate", nil) // all of them, attempts reset
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("replayed", n)
}
