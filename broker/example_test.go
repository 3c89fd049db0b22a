package broker_test

import (
	"context"
	"fmt"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/memory"
	"github.com/conveyor-jobs/conveyor/job"
)

// Summarise is the payload of a summarise job.
type Summarise struct {
	Document string `json:"document"`
	Words    int    `json:"words"`
}

// A typed publisher encodes with the codec of job.Typed, so a typed handler
// decodes what it published.
func ExampleTypedPublisher() {
	ctx := context.Background()
	b := memory.New(&memory.Options{FetchWait: -1})
	defer b.Close()

	summarise := broker.NewTypedPublisher[Summarise](b, "summarise", nil)
	id, err := summarise.Publish(ctx, Summarise{Document: "incident-7", Words: 100}, &broker.PublishOptions{
		ID:      "summary-incident-7",
		Headers: map[string]string{"tenant": "acme"},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("published", id)

	h := job.Typed(func(ctx context.Context, s Summarise, j *job.Job) error {
		fmt.Printf("%s for %s: %s in %d words\n", j.ID, j.Header("tenant"), s.Document, s.Words)
		return nil
	})
	ds, err := b.Fetch(ctx, []string{"summarise"}, 10)
	if err != nil {
		panic(err)
	}
	for _, d := range ds {
		if err := h.ProcessJob(ctx, &d.Job); err != nil {
			panic(err)
		}
	}
	// Output:
	// published summary-incident-7
	// summary-incident-7 for acme: incident-7 in 100 words
}

// PublishBatch publishes many values in one call, all with the same options.
func ExampleTypedPublisher_PublishBatch() {
	ctx := context.Background()
	b := memory.New(nil)
	defer b.Close()

	summarise := broker.NewTypedPublisher[Summarise](b, "summarise", nil)
	ids, err := summarise.PublishBatch(ctx, []Summarise{{Document: "a"}, {Document: "b"}, {Document: "c"}},
		&broker.PublishOptions{Delay: time.Hour})
	if err != nil {
		panic(err)
	}
	info, err := b.Inspect(ctx, "summarise")
	if err != nil {
		panic(err)
	}
	fmt.Printf("%d jobs published, %d delayed\n", len(ids), info.Delayed)
	// Output:
	// 3 jobs published, 3 delayed
}

// Message builds the messages of a batch whose jobs need options of their
// own, such as an ID each.
func ExampleTypedPublisher_Message() {
	ctx := context.Background()
	b := memory.New(nil)
	defer b.Close()

	summarise := broker.NewTypedPublisher[Summarise](b, "summarise", nil)
	var ms []broker.Message
	for _, doc := range []string{"q1", "q2"} {
		m, err := summarise.Message(Summarise{Document: doc}, &broker.PublishOptions{ID: "summary-" + doc})
		if err != nil {
			panic(err)
		}
		ms = append(ms, m)
	}
	ids, err := b.PublishBatch(ctx, ms)
	if err != nil {
		panic(err)
	}
	fmt.Println(ids, string(ms[0].Payload))
	// Output:
	// [summary-q1 summary-q2] {"document":"q1","words":0}
}

// Code that only publishes takes a Publisher, so it accepts a broker or a
// producer with middleware alike.
func ExamplePublisher() {
	ctx := context.Background()
	b := memory.New(nil)
	defer b.Close()

	welcome := func(ctx context.Context, p broker.Publisher, user string) error {
		_, err := p.Publish(ctx, broker.Message{Topic: "emails", Payload: []byte(`"` + user + `"`)})
		return err
	}
	withTenant := func(next broker.PublishFunc) broker.PublishFunc {
		return func(ctx context.Context, ms []broker.Message) ([]string, error) {
			for i := range ms {
				ms[i].Headers = map[string]string{"tenant": "acme"}
			}
			return next(ctx, ms)
		}
	}

	if err := welcome(ctx, b, "ada"); err != nil {
		panic(err)
	}
	if err := welcome(ctx, broker.NewProducer(b, withTenant), "grace"); err != nil {
		panic(err)
	}
	ds, err := b.Fetch(ctx, []string{"emails"}, 10)
	if err != nil {
		panic(err)
	}
	for _, d := range ds {
		fmt.Printf("%s tenant=%q\n", d.Job.Payload, d.Job.Header("tenant"))
	}
	// Output:
	// "ada" tenant=""
	// "grace" tenant="acme"
}
