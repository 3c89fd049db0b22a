package server_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/memory"
	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/server"
)

// Prompt is the payload of an "orchestrate" job.
type Prompt struct {
	Text string `json:"text"`
}

// A mux with a typed handler, the in-memory broker and a server: three jobs
// are published, and each ends acknowledged or dead-lettered.
func Example() {
	ctx := context.Background()
	b := memory.New(nil)
	defer b.Close()

	done := make(chan string, 3)
	mux := job.NewMux()
	mux.Handle("orchestrate", job.Typed(func(ctx context.Context, p Prompt, j *job.Job) error {
		if p.Text == "" {
			return job.Permanent(errors.New("empty prompt"))
		}
		done <- fmt.Sprintf("%s: ran %q", j.ID, p.Text)
		return nil
	}))
	mux.HandleFunc("orchestrate.dlq", func(ctx context.Context, j *job.Job) error {
		done <- fmt.Sprintf("%s: dead letter, %s: %s", j.ID, j.Failure.Reason, j.Failure.Error)
		return nil
	})

	srv, err := server.New(b, mux, &server.Options{Concurrency: 1})
	if err != nil {
		panic(err)
	}
	for _, m := range []broker.Message{
		{Topic: "orchestrate", ID: "a", Payload: []byte(`{"text":"plan the trip"}`)},
		{Topic: "orchestrate", ID: "b", Payload: []byte(`{"text":""}`)},
		{Topic: "orchestrate", ID: "c", Payload: []byte(`{not json`)},
	} {
		if _, err := b.Publish(ctx, m); err != nil {
			panic(err)
		}
	}

	runCtx, stop := context.WithCancel(ctx)
	result := make(chan error, 1)
	go func() { result <- srv.Run(runCtx) }()
	for range 3 {
		fmt.Println(<-done)
	}
	stop() // graceful: in-flight jobs finish, acks are flushed
	if err := <-result; err != nil {
		panic(err)
	}
	st := srv.Stats()
	fmt.Printf("acked %d, dead-lettered %d\n", st.Acked, st.DeadLettered)
	// Output:
	// a: ran "plan the trip"
	// b: dead letter, permanent: empty prompt
	// c: dead letter, undecodable: conveyor: cannot decode payload of topic "orchestrate" into server_test.Prompt: invalid character 'n' looking for beginning of object key string
	// acked 3, dead-lettered 2
}
