package dashboard_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/memory"
	"github.com/conveyor-jobs/conveyor/dashboard"
)

// TestTopicPartitionsPanel: a topic of several partitions gets a panel with
// one row per partition; a topic of one gets none.
func TestTopicPartitionsPanel(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := memory.New(nil)
	t.Cleanup(func() { _ = b.Close() })
	publish := func(topic, key string) {
		t.Helper()
		if _, err := b.Publish(ctx, broker.Message{Topic: topic, Key: key, Payload: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	publish("plain", "")
	if err := b.SetPartitions(ctx, "chats", 3); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"a", "b", "c", "d", "e", "f"} {
		publish("chats", key)
	}
	h := dashboard.New(b, nil)

	if p := get(t, h, "/topics/plain"); p.StatusCode != http.StatusOK || section(p.body, "partitions") != "" {
		t.Errorf("topic of one partition: status %d, partitions panel %q", p.StatusCode, section(p.body, "partitions"))
	}
	page := get(t, h, "/topics/chats")
	if page.StatusCode != http.StatusOK {
		t.Fatalf("topic page: %d", page.StatusCode)
	}
	panel := section(page.body, "partitions")
	if strings.Count(panel, "<tr>") != 4 { // the header and three partitions
		t.Errorf("partitions panel has %d rows, want a header and 3:\n%s", strings.Count(panel, "<tr>"), panel)
	}
	// The stats fragment, refreshed in place, carries it too.
	if frag := get(t, h, "/topics/chats/fragments/stats"); !strings.Contains(frag.body, `id="partitions"`) {
		t.Errorf("stats fragment has no partitions panel")
	}
}
