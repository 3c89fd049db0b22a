package job_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/job"
)

func TestAbandoned(t *testing.T) {
	end := time.Date(2026, 1, 1, 0, 0, 30, 0, time.UTC)
	before, after := end.Add(-time.Millisecond), end
	abandon := func() context.Context {
		ctx, cancel := context.WithCancelCause(context.Background())
		cancel(&job.AbandonedError{LeaseEnds: map[string]time.Time{"j": end}})
		return ctx
	}
	cancelled := func() context.Context {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		return ctx
	}
	tests := []struct {
		name string
		ctx  context.Context
		err  error
		now  time.Time
		want bool
	}{
		{"running", context.Background(), context.Canceled, after, false},
		{"cancelled by someone else", cancelled(), context.Canceled, after, false},
		{"answers the cancellation", abandon(), fmt.Errorf("wrapped: %w", context.Canceled), before, true},
		{"returns the cause", abandon(), context.Cause(abandon()), before, true},
		{"succeeds while leased", abandon(), nil, before, false},
		{"fails while leased", abandon(), errors.New("boom"), before, false},
		{"succeeds after the lease", abandon(), nil, after, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leaseEnd, got := job.Abandoned(tt.ctx, &job.Job{ID: "j"}, tt.err, tt.now)
			if got != tt.want || (got && !leaseEnd.Equal(end)) {
				t.Fatalf("Abandoned = %v, %v; want %v", leaseEnd, got, tt.want)
			}
		})
	}
}
