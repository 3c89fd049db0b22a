package broker_test

import (
	"fmt"
	"testing"

	"github.com/conveyor-jobs/conveyor/broker"
)

func TestPartitionFor(t *testing.T) {
	for _, n := range []int{-1, 0, 1} {
		if p := broker.PartitionFor("tenant-1", n); p != 0 {
			t.Errorf("PartitionFor(key, %d) = %d, want 0", n, p)
		}
	}
	// Stable: the value is part of the wire contract between producers.
	if p := broker.PartitionFor("tenant-1", 12); p != broker.PartitionFor("tenant-1", 12) {
		t.Fatalf("PartitionFor is not deterministic")
	}
	// Spread: 12,000 keys over 12 partitions land within 20 % of 1,000 each.
	counts := make([]int, 12)
	for i := range 12000 {
		p := broker.PartitionFor(fmt.Sprintf("conversation-%d", i), 12)
		if p < 0 || p >= 12 {
			t.Fatalf("PartitionFor = %d, out of range", p)
		}
		counts[p]++
	}
	for p, c := range counts {
		if c < 800 || c > 1200 {
			t.Errorf("partition %d got %d of 12000 keys, want 800..1200 (%v)", p, c, counts)
		}
	}
}
