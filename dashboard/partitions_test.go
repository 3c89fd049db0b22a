package dashboard_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/memory"
	"github.com/conveyor-jobs/conveyor/dashboard"
	"github.com/conveyor-jobs/conveyor/internal/dashboardtest"
)

// partitioned gives a memory broker a fixed per-partition breakdown; every
// other power of the memory broker is promoted.
type partitioned struct {
	*memory.Broker
	parts []broker.PartitionInfo
}

func (p partitioned) InspectPartitions(context.Context, string) ([]broker.PartitionInfo, error) {
	return p.parts, nil
}

// TestTopicPartitionsPanel: a topic of several partitions gets a panel with
// one row per partition, naming its node; a topic of one gets none.
func TestTopicPartitionsPanel(t *testing.T) {
	t.Parallel()
	b := memory.New(nil)
	t.Cleanup(func() { _ = b.Close() })
	dashboardtest.Publish(t, b, "emails", 3)

	one := dashboard.New(partitioned{Broker: b, parts: []broker.PartitionInfo{{Partition: 0, Length: 3, Lag: 3}}}, nil)
	if p := get(t, one, "/topics/emails"); p.StatusCode != http.StatusOK || section(p.body, "partitions") != "" {
		t.Errorf("topic of one partition: status %d, partitions panel %q", p.StatusCode, section(p.body, "partitions"))
	}

	many := dashboard.New(partitioned{Broker: b, parts: []broker.PartitionInfo{
		{Partition: 0, Length: 1, Lag: 1, Node: "10.0.0.1:7000"},
		{Partition: 1, Length: 2, Pending: 1, Lag: 1, DeadLetters: 4, Node: "10.0.0.2:7000"},
	}}, nil)
	page := get(t, many, "/topics/emails")
	if page.StatusCode != http.StatusOK {
		t.Fatalf("topic page: %d", page.StatusCode)
	}
	panel := section(page.body, "partitions")
	if strings.Count(panel, "<tr>") != 3 { // the header and two partitions
		t.Errorf("partitions panel has %d rows, want a header and 2:\n%s", strings.Count(panel, "<tr>"), panel)
	}
	for _, want := range []string{"10.0.0.1:7000", "10.0.0.2:7000", ">4<"} {
		if !strings.Contains(panel, want) {
			t.Errorf("partitions panel does not contain %q:\n%s", want, panel)
		}
	}
	// The stats fragment, refreshed in place, carries it too.
	frag := get(t, many, "/topics/emails/fragments/stats")
	if !strings.Contains(frag.body, `id="partitions"`) {
		t.Errorf("stats fragment has no partitions panel")
	}
}
