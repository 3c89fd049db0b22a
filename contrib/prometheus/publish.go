package prometheus

import (
	"context"
	"errors"
	"slices"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/middleware"
)

// CountPublished returns producer middleware that counts
// [middleware.EventEnqueued] on rec, per topic, for every message the broker
// accepted. When publishing fails part way through a batch, only the messages
// the broker returned an ID for are counted, and never those refused as
// duplicates of a unique job (broker.BatchError.Duplicates). It works with
// any [middleware.Recorder], not only this package's.
func CountPublished(rec middleware.Recorder) broker.PublishMiddleware {
	return func(next broker.PublishFunc) broker.PublishFunc {
		return func(ctx context.Context, ms []broker.Message) ([]string, error) {
			ids, err := next(ctx, ms)
			n := len(ms)
			if err != nil {
				n = min(len(ids), len(ms))
			}
			var be *broker.BatchError
			if errors.As(err, &be) && len(be.Duplicates) > 0 {
				counted := slices.Clone(ids)
				for _, i := range be.Duplicates {
					if i < len(counted) {
						counted[i] = "" // not enqueued
					}
				}
				countRuns(rec, ms[:n], counted)
				return ids, err
			}
			countRuns(rec, ms[:n], ids)
			return ids, err
		}
	}
}

// countRuns counts the messages of ms that have a non-empty ID in ids,
// adding runs of the same topic in one call, without allocating.
func countRuns(rec middleware.Recorder, ms []broker.Message, ids []string) {
	run, topic := 0, ""
	for i := range ms {
		if i < len(ids) && ids[i] == "" {
			continue
		}
		if run > 0 && ms[i].Topic != topic {
			rec.Count(topic, middleware.EventEnqueued, run)
			run = 0
		}
		topic = ms[i].Topic
		run++
	}
	if run > 0 {
		rec.Count(topic, middleware.EventEnqueued, run)
	}
}
