package memory

import (
	"context"
	"strconv"
	"testing"
	"unsafe"

	"github.com/conveyor-jobs/conveyor/broker"
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

// A Fetch names its deliveries in one buffer: each receipt is its entry's,
// also where the receipts' lengths change within the batch, and the ID of a
// job without one is its first receipt.
func TestFetchNamesDeliveries(t *testing.T) {
	ctx := context.Background()
	b := New(&Options{FetchWait: -1})
	defer b.Close()
	b.st.seq.Store(30) // receipts 31 to 40: one base-36 digit, then two
	var ids []string
	for i := range 10 {
		m := broker.Message{Topic: "t"}
		if i%4 == 3 {
			m.ID = "own-" + strconv.Itoa(i)
		}
		id, err := b.Publish(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	ds, err := b.Fetch(ctx, []string{"t"}, 10)
	if err != nil || len(ds) != 10 {
		t.Fatalf("Fetch = %d, %v", len(ds), err)
	}
	for i, d := range ds {
		want := b.st.receiptOf(31 + uint64(i))
		if d.Receipt != want {
			t.Errorf("delivery %d: receipt %q, want %q", i, d.Receipt, want)
		}
		if d.Job.ID != ids[i] {
			t.Errorf("delivery %d: ID %q, want %q", i, d.Job.ID, ids[i])
		}
		if i%4 != 3 && d.Job.ID != d.Receipt {
			t.Errorf("delivery %d: ID %q is not its receipt %q", i, d.Job.ID, d.Receipt)
		}
	}
	if err := b.Ack(ctx, ds...); err != nil {
		t.Fatal(err)
	}
	if len(b.st.leased) != 0 || b.st.leases.head != nil {
		t.Errorf("after acking all: %d leased", len(b.st.leased))
	}
}
