package memory_test

import (
	"context"
	"fmt"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/memory"
)

func Example() {
	ctx := context.Background()
	b := memory.New(nil)
	defer b.Close()

	if _, err := b.Publish(ctx, broker.Message{
		Topic:   "emails",
		ID:      "welcome-42",
		Payload: []byte(`{"to":"ada@example.com"}`),
		Headers: map[string]string{"tenant": "acme"},
	}); err != nil {
		panic(err)
	}

	ds, err := b.Fetch(ctx, []string{"emails"}, 10)
	if err != nil {
		panic(err)
	}
	for _, d := range ds {
		fmt.Printf("%s %s attempt %d tenant %s: %s\n",
			d.Job.Topic, d.Job.ID, d.Job.Attempt, d.Job.Header("tenant"), d.Job.Payload)
	}
	if err := b.Ack(ctx, ds...); err != nil {
		panic(err)
	}
	// Output:
	// emails welcome-42 attempt 1 tenant acme: {"to":"ada@example.com"}
}

// Several workers share one broker's jobs through consumer views.
func ExampleBroker_Consumer() {
	ctx := context.Background()
	b := memory.New(&memory.Options{FetchWait: -1})
	defer b.Close()
	w1, w2 := b.Consumer("worker-1"), b.Consumer("worker-2")

	if _, err := b.PublishBatch(ctx, []broker.Message{{Topic: "t", Payload: []byte("a")}, {Topic: "t", Payload: []byte("b")}}); err != nil {
		panic(err)
	}
	d1, _ := w1.Fetch(ctx, []string{"t"}, 1)
	d2, _ := w2.Fetch(ctx, []string{"t"}, 1)
	fmt.Printf("%s got %s, %s got %s\n", w1.Name(), d1[0].Job.Payload, w2.Name(), d2[0].Job.Payload)
	_ = w1.Ack(ctx, d1...)
	_ = w2.Ack(ctx, d2...)
	// Output:
	// worker-1 got a, worker-2 got b
}
