package memory

import (
	"testing"
	"unsafe"
)

// The entry of a queued job stays at 80 bytes on 64-bit platforms: 100 of
// them (a batch) fit the 8 KiB size class, which keeps a queued 32-byte job
// near 120 bytes of heap (BenchmarkQueuedBytes). A field that a plain job
// leaves unset belongs in extra; one that only a delivery needs, in lease.
func TestEntrySize(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("sizes are for 64-bit platforms")
	}
	if n := unsafe.Sizeof(entry{}); n > 80 {
		t.Errorf("entry is %d bytes, want at most 80", n)
	}
}
