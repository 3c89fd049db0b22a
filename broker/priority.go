package broker

import "context"

// TopicWeight is a topic and its weight in a [PriorityFetcher] fetch.
type TopicWeight struct {
	Topic string
	// Weight is the topic's relative share of the jobs fetched (weighted
	// fetch) or its rank (strict fetch: higher first). Values below 1
	// count as 1.
	Weight int
}

// PriorityFetcher is implemented by brokers that share a fetch among
// topics by priority in the fetch itself, at no extra cost (both brokers of
// conveyor). The server uses it when Options.Priorities or
// Options.StrictPriority is set.
type PriorityFetcher interface {
	// FetchWeighted is Fetch with priorities. Weighted (strict false):
	// while every topic has jobs ready, the jobs returned over successive
	// calls follow the weights (3:2:1 gives 50 %, 33 %, 17 %), even when
	// max is 1; a topic with nothing ready leaves its share to the others.
	// Strict: topics are served in order of weight, highest first (equal
	// weights in the order given), and a topic gets jobs only when every
	// topic before it has none ready. Within a topic, jobs come oldest
	// first, as with Fetch.
	FetchWeighted(ctx context.Context, topics []TopicWeight, max int, strict bool) ([]*Delivery, error)
}

// Pauser is implemented by brokers whose topics can be paused. A paused
// topic is not fetched by any consumer of the store: its jobs stay queued,
// delayed jobs wait, deliveries made before the pause run to their end.
// The pause is kept in the store, so it outlives the process that set it.
type Pauser interface {
	// Pause stops the fetching of topic until Resume. Pausing a paused
	// topic is harmless.
	Pause(ctx context.Context, topic string) error
	// Resume lets topic be fetched again. Resuming a topic that is not
	// paused is harmless.
	Resume(ctx context.Context, topic string) error
	// Paused reports whether topic is paused.
	Paused(ctx context.Context, topic string) (bool, error)
}
