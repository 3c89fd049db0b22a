package broker_test

import (
	"math"
	"testing"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/job"
)

func TestAddAttempts(t *testing.T) {
	for _, tt := range []struct {
		attempt int
		n       int64
		want    int
	}{
		{1, 0, 1},
		{1, 1, 2},
		{3, 2, 5},
		{0, 0, 1},
		{-7, 1, 2},
		{job.MaxAttempt, 1, job.MaxAttempt},
		{math.MaxInt, 1, job.MaxAttempt},
		{math.MaxInt, math.MaxInt64, job.MaxAttempt},
		{math.MinInt, math.MinInt64, 1},
		{5, -10, 1},
	} {
		if got := broker.AddAttempts(tt.attempt, tt.n); got != tt.want {
			t.Errorf("AddAttempts(%d, %d) = %d, want %d", tt.attempt, tt.n, got, tt.want)
		}
	}
}
