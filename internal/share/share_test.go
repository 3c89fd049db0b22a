package share

import (
	"math"
	"testing"
)

// TestPlanFollowsWeights: one job per plan, weights 3:2:1 give 3, 2 and 1
// jobs of every 6, and a topic found idle does not get a burst later.
func TestPlanFollowsWeights(t *testing.T) {
	weights := []int{3, 2, 1}
	pass := make([]int64, 3)
	strides := make([]int64, 3)
	for i, w := range weights {
		strides[i] = Stride(w)
	}
	live := []bool{true, true, true}
	got := make([]int, 3)
	for range 600 {
		for i, n := range Plan(pass, strides, live, 1) {
			got[i] += n
		}
		Normalize(pass)
	}
	for i, want := range []int{300, 200, 100} {
		if got[i] != want {
			t.Fatalf("topic %d got %d of 600, want %d (all: %v)", i, got[i], want, got)
		}
	}

	// Topic 0 idle for 300 jobs: when it returns, it gets its share, not
	// the 150 it missed.
	live[0] = false
	for range 300 {
		Plan(pass, strides, live, 1)
		Idle(pass, live)
		Normalize(pass)
	}
	live[0] = true
	got = make([]int, 3)
	for range 6 {
		for i, n := range Plan(pass, strides, live, 1) {
			got[i] += n
		}
	}
	if math.Abs(float64(got[0]-3)) > 1 {
		t.Fatalf("topic 0 back from idle got %d of 6 jobs, want 3 (±1)", got[0])
	}
}

func TestStrideBounds(t *testing.T) {
	if Stride(0) != Unit || Stride(-5) != Unit || Stride(MaxWeight+1) != Stride(MaxWeight) {
		t.Fatalf("weights out of range are not clamped: %d %d %d", Stride(0), Stride(-5), Stride(MaxWeight+1))
	}
}
