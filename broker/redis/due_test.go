package redis

import "testing"

// TestDueTimesAcrossPromotions: the due time a broker keeps for a topic is
// the head a promotion returned, unless this broker added an earlier member
// while the promotion ran (the head may miss it); a member noted during a
// promotion and already covered by its head does not leave a stale, past
// due time behind (which would promote again for nothing).
func TestDueTimesAcrossPromotions(t *testing.T) {
	k := keys{topic: "t", id: "t"}
	cases := []struct {
		name   string
		run    func(b *Broker)
		want   int64
		wantOK bool
	}{
		{"head after promotion", func(b *Broker) {
			b.noteDue("t", 100)
			b.promoting([]keys{k})
			b.promoted("t", 500)
		}, 500, true},
		{"set emptied", func(b *Broker) {
			b.noteDue("t", 100)
			b.promoting([]keys{k})
			b.promoted("t", -1)
		}, 0, false},
		{"earlier member noted during the promotion", func(b *Broker) {
			b.noteDue("t", 100)
			b.promoting([]keys{k})
			b.noteDue("t", 300)
			b.promoted("t", 500)
		}, 300, true},
		{"member noted during the promotion into a set it empties", func(b *Broker) {
			b.promoting([]keys{k})
			b.noteDue("t", 300)
			b.promoted("t", -1)
		}, 300, true},
		{"later member noted during the promotion", func(b *Broker) {
			b.noteDue("t", 100)
			b.promoting([]keys{k})
			b.noteDue("t", 900)
			b.promoted("t", 500)
		}, 500, true},
		{"notes of an earlier promotion do not count", func(b *Broker) {
			b.promoting([]keys{k})
			b.noteDue("t", 100)
			b.promoted("t", 100)
			b.promoting([]keys{k})
			b.promoted("t", 700)
		}, 700, true},
		{"lowered between promotions", func(b *Broker) {
			b.promoting([]keys{k})
			b.promoted("t", 700)
			b.noteDue("t", 200)
		}, 200, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := &Broker{due: map[string]dueAt{}, waits: map[*waiting]struct{}{}}
			tc.run(b)
			got, ok := b.nextDue([]keys{k})
			if ok != tc.wantOK || (ok && got != tc.want) {
				t.Fatalf("next due %d (known %v), want %d (known %v)", got, ok, tc.want, tc.wantOK)
			}
		})
	}
}
