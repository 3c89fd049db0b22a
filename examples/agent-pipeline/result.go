//go:build conveyor_results

package main

import (
	"context"

	"github.com/conveyor-jobs/conveyor/job"
)

// setResult records v as the step's result (job.SetResult): the server
// hands it to the broker with the ack, and the batch keeps it for the
// aggregate.
func setResult(ctx context.Context, v any) error { return job.SetResult(ctx, v) }
