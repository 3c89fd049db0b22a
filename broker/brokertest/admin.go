package brokertest

import (
	"errors"
	"slices"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/job"
)

func testInspect(e *env) {
	t := e.t
	b := e.open("c1")
	ins := inspector(t, b)
	e.publishN(b, "insp", 4)
	e.publish(b, broker.Message{Topic: "insp", Payload: []byte("d1"), Delay: time.Hour})
	e.publish(b, broker.Message{Topic: "insp", Payload: []byte("d2"), Delay: time.Hour})
	ds := e.fetchN(b, []string{"insp"}, 2, 2)
	if err := b.DeadLetter(e.ctx, ds[0], job.Failure{Error: "x", Reason: job.ReasonPermanent, Origin: "insp"}); err != nil {
		t.Fatalf("DeadLetter: %v", err)
	}
	// Now: 2 unread, 1 pending, 2 delayed, 1 dead letter.
	info, err := ins.Inspect(e.ctx, "insp")
	if err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	if info.Topic != "insp" {
		t.Errorf("Topic = %q", info.Topic)
	}
	want := struct{ length, pending, delayed, dead int64 }{3, 1, 2, 1}
	got := struct{ length, pending, delayed, dead int64 }{info.Length, info.Pending, info.Delayed, info.DeadLetters}
	if got != want {
		t.Errorf("Inspect = length %d, pending %d, delayed %d, dead letters %d; want %d, %d, %d, %d",
			got.length, got.pending, got.delayed, got.dead, want.length, want.pending, want.delayed, want.dead)
	}
	if info.Lag != 2 {
		t.Logf("Lag = %d (2 unread)", info.Lag)
	}
	if len(info.Groups) == 0 {
		t.Error("Groups is empty; a broker without groups reports one")
	}
	topics, err := ins.Topics(e.ctx)
	if err != nil {
		t.Fatalf("Topics: %v", err)
	}
	if !slices.Contains(topics, "insp") || slices.Contains(topics, job.DeadLetterTopic("insp")) {
		t.Errorf("Topics = %q, want insp listed and insp.dlq not listed", topics)
	}
	if !slices.IsSorted(topics) {
		t.Errorf("Topics = %q, not sorted", topics)
	}
	e.ack(b, ds[1])
	info, err = ins.Inspect(e.ctx, "insp")
	if err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	if info.Pending != 0 || info.Length != 2 {
		t.Errorf("after Ack: pending %d, length %d; want 0 and 2", info.Pending, info.Length)
	}
}

func testDeadLettersPaging(e *env) {
	t := e.t
	b := e.open("c1")
	a := dlAdmin(t, b)
	published := e.publishN(b, "pages", 5)
	e.deadLetterAll(b, "pages", 5)

	all := e.deadLetters(a, "pages", 2)
	if len(all) != 5 {
		t.Fatalf("listed %d dead letters by pages of 2, want 5", len(all))
	}
	var gotIDs []string
	for i, dl := range all {
		gotIDs = append(gotIDs, dl.Job.ID)
		if dl.ID == "" {
			t.Errorf("dead letter %d has no ID", i)
		}
		if dl.Job.Failure == nil || dl.Job.Failure.Error != "fail-"+string(dl.Job.Payload) || dl.Job.Failure.Origin != "pages" {
			t.Errorf("dead letter %d: Failure = %+v", i, dl.Job.Failure)
		}
		if dl.Job.Attempt != 1 {
			t.Errorf("dead letter %d: Attempt = %d, want 1", i, dl.Job.Attempt)
		}
	}
	if !slices.Equal(gotIDs, published) {
		t.Errorf("dead letters listed as %q, want oldest first %q", gotIDs, published)
	}
	one, err := a.DeadLetterByID(e.ctx, "pages", all[2].ID)
	if err != nil {
		t.Fatalf("DeadLetter(%q): %v", all[2].ID, err)
	}
	if one.ID != all[2].ID || one.Job.ID != published[2] || string(one.Job.Payload) != "pages-2" {
		t.Errorf("DeadLetter(%q) = %+v", all[2].ID, one)
	}
	if rest, err := a.DeadLetters(e.ctx, "pages", all[4].ID, 10); err != nil || len(rest) != 0 {
		t.Errorf("DeadLetters after the last = %d, %v; want none", len(rest), err)
	}
}

func testReplay(e *env) {
	t := e.t
	b := e.open("c1")
	a := dlAdmin(t, b)
	published := e.publishN(b, "replay", 4)
	ds := e.fetchN(b, []string{"replay"}, 4, 4)
	for _, d := range ds { // spend an attempt, so the reset shows
		if err := b.Retry(e.ctx, d, 0, job.Failure{Error: "first", Reason: job.ReasonError, Origin: "replay"}); err != nil {
			t.Fatalf("Retry: %v", err)
		}
	}
	e.deadLetterAll(b, "replay", 4)
	dls := e.deadLetters(a, "replay", 10)
	if len(dls) != 4 {
		t.Fatalf("%d dead letters, want 4", len(dls))
	}

	n, err := a.ReplayDeadLetters(e.ctx, "replay", []string{dls[0].ID, dls[2].ID})
	if err != nil || n != 2 {
		t.Fatalf("ReplayDeadLetters(2 ids) = %d, %v; want 2", n, err)
	}
	back := e.fetchN(b, []string{"replay"}, 2, 10)
	if got := ids(back); !slices.Equal(got, []string{published[0], published[2]}) {
		t.Errorf("replayed jobs %q, want %q", got, []string{published[0], published[2]})
	}
	for _, d := range back {
		if d.Job.Attempt != 1 || d.Job.Failure != nil {
			t.Errorf("replayed %s: Attempt %d, Failure %+v; want 1 and nil", d.Job.ID, d.Job.Attempt, d.Job.Failure)
		}
		if d.Job.Topic != "replay" {
			t.Errorf("replayed %s on topic %q", d.Job.ID, d.Job.Topic)
		}
	}
	e.ack(b, back...)
	if left := e.deadLetters(a, "replay", 10); len(left) != 2 {
		t.Fatalf("%d dead letters left, want 2", len(left))
	}

	n, err = a.ReplayDeadLetters(e.ctx, "replay", nil)
	if err != nil || n != 2 {
		t.Fatalf("ReplayDeadLetters(all) = %d, %v; want 2", n, err)
	}
	if left := e.deadLetters(a, "replay", 10); len(left) != 0 {
		t.Errorf("%d dead letters left after replaying all", len(left))
	}
	back = e.fetchN(b, []string{"replay"}, 2, 10)
	if got := sortedCopy(ids(back)); !slices.Equal(got, sortedCopy([]string{published[1], published[3]})) {
		t.Errorf("replayed jobs %q, want %q", got, []string{published[1], published[3]})
	}
	for _, d := range back {
		if d.Job.Attempt != 1 || d.Job.Failure != nil {
			t.Errorf("replayed %s: Attempt %d, Failure %+v; want 1 and nil", d.Job.ID, d.Job.Attempt, d.Job.Failure)
		}
	}
	e.ack(b, back...)
	e.expectNone(b, []string{job.DeadLetterTopic("replay")}, 0, "dead-letter topic after replaying all")
	if ins, ok := b.(broker.Inspector); ok {
		if info, err := ins.Inspect(e.ctx, "replay"); err != nil || info.DeadLetters != 0 {
			t.Errorf("Inspect after replaying all: %+v, %v; want 0 dead letters", info, err)
		}
	}
}

func testPurge(e *env) {
	t := e.t
	b := e.open("c1")
	a := dlAdmin(t, b)
	e.publishN(b, "purge", 3)
	e.deadLetterAll(b, "purge", 3)
	dls := e.deadLetters(a, "purge", 10)
	if len(dls) != 3 {
		t.Fatalf("%d dead letters, want 3", len(dls))
	}
	n, err := a.PurgeDeadLetters(e.ctx, "purge", []string{dls[1].ID})
	if err != nil || n != 1 {
		t.Fatalf("PurgeDeadLetters(1 id) = %d, %v; want 1", n, err)
	}
	if _, err := a.DeadLetterByID(e.ctx, "purge", dls[1].ID); !errors.Is(err, broker.ErrNotFound) {
		t.Errorf("DeadLetter of a purged id: err = %v, want ErrNotFound", err)
	}
	left := e.deadLetters(a, "purge", 10)
	if len(left) != 2 || left[0].ID != dls[0].ID || left[1].ID != dls[2].ID {
		t.Errorf("after purging one: %d left", len(left))
	}
	n, err = a.PurgeDeadLetters(e.ctx, "purge", nil)
	if err != nil || n != 2 {
		t.Fatalf("PurgeDeadLetters(all) = %d, %v; want 2", n, err)
	}
	if left := e.deadLetters(a, "purge", 10); len(left) != 0 {
		t.Errorf("%d dead letters left after purging all", len(left))
	}
	e.expectNone(b, []string{job.DeadLetterTopic("purge"), "purge"}, 0, "after purging all")
}

func testTrim(e *env) {
	t := e.t
	b := e.open("c1")
	tr := trimmer(t, b)

	// By default unread entries survive any trim: with nothing in flight,
	// a trim of 10 unread jobs removes none.
	e.publishN(b, "trim-u", 10)
	for _, opts := range []broker.TrimOptions{{MaxLen: 2}, {OlderThan: time.Nanosecond}} {
		n, err := tr.Trim(e.ctx, "trim-u", opts)
		if err != nil || n != 0 {
			t.Errorf("Trim(%+v) of 10 unread jobs = %d, %v; want 0 (unread jobs are kept)", opts, n, err)
		}
	}
	unread := e.fetchN(b, []string{"trim-u"}, 10, 10)
	if len(unread) != 10 {
		t.Errorf("after trimming unread jobs by default: %d left, want 10", len(unread))
	}
	e.ack(b, unread...)

	// Pending entries, and anything newer, survive any trim, with
	// IncludeUnread too.
	e.publishN(b, "trim-p", 3)
	held := e.fetchN(b, []string{"trim-p"}, 1, 1)
	for _, opts := range []broker.TrimOptions{{MaxLen: 1}, {MaxLen: 1, IncludeUnread: true}} {
		n, err := tr.Trim(e.ctx, "trim-p", opts)
		if err != nil {
			t.Fatalf("Trim(%+v): %v", opts, err)
		}
		if n != 0 {
			t.Errorf("Trim(%+v) with the oldest entry pending removed %d, want 0", opts, n)
		}
	}
	e.ack(b, held...)
	// Once nothing is pending, IncludeUnread removes the older unread job.
	n, err := tr.Trim(e.ctx, "trim-p", broker.TrimOptions{MaxLen: 1, IncludeUnread: true})
	if err != nil || n != 1 {
		t.Errorf("Trim(MaxLen 1, IncludeUnread) of 2 unread jobs = %d, %v; want 1", n, err)
	}
	rest := e.fetchN(b, []string{"trim-p"}, 1, 10)
	if got := payloads(rest); !slices.Equal(got, []string{"trim-p-2"}) {
		t.Errorf("after the trim: %q, want trim-p-2", got)
	}
	e.ack(b, rest...)

	// With IncludeUnread, MaxLen keeps the newest.
	e.publishN(b, "trim-m", 10)
	acked := e.fetchN(b, []string{"trim-m"}, 3, 3)
	e.ack(b, acked...)
	n, err = tr.Trim(e.ctx, "trim-m", broker.TrimOptions{MaxLen: 3})
	if err != nil || n != 0 {
		t.Errorf("Trim(MaxLen 3) of 7 unread entries = %d, %v; want 0", n, err)
	}
	n, err = tr.Trim(e.ctx, "trim-m", broker.TrimOptions{MaxLen: 3, IncludeUnread: true})
	if err != nil || n != 4 {
		t.Errorf("Trim(MaxLen 3, IncludeUnread) of 7 entries = %d, %v; want 4", n, err)
	}
	kept := e.fetchN(b, []string{"trim-m"}, 3, 10)
	if got := payloads(kept); !slices.Equal(got, []string{"trim-m-7", "trim-m-8", "trim-m-9"}) {
		t.Errorf("after Trim(MaxLen 3, IncludeUnread): %q, want the 3 newest", got)
	}
	e.ack(b, kept...)

	// With IncludeUnread, OlderThan removes entries once they are old
	// enough.
	e.publishN(b, "trim-o", 2)
	var removed int64
	eventually(t, waitLimit, "Trim(OlderThan, IncludeUnread) did not remove the old entries", func() bool {
		n, err := tr.Trim(e.ctx, "trim-o", broker.TrimOptions{OlderThan: 20 * time.Millisecond, IncludeUnread: true})
		if err != nil {
			t.Fatalf("Trim(OlderThan): %v", err)
		}
		removed += n
		return removed >= 2
	})
	if removed != 2 {
		t.Errorf("Trim(OlderThan, IncludeUnread) removed %d, want 2", removed)
	}
	e.expectNone(b, []string{"trim-o"}, 0, "after Trim(OlderThan) removed everything")
}

func testTrimDryRun(e *env) {
	t := e.t
	b := e.open("c1")
	tr := trimmer(t, b)
	dr := power[broker.TrimDryRunner](t, b, "TrimDryRunner")

	// check runs TrimDryRun twice (the first must have removed nothing),
	// then Trim: all three must agree, on want.
	check := func(topic string, opts broker.TrimOptions, want int64, why string) {
		t.Helper()
		dry, err := dr.TrimDryRun(e.ctx, topic, opts)
		if err != nil {
			t.Fatalf("TrimDryRun(%+v): %v", opts, err)
		}
		again, err := dr.TrimDryRun(e.ctx, topic, opts)
		if err != nil {
			t.Fatalf("TrimDryRun(%+v): %v", opts, err)
		}
		n, err := tr.Trim(e.ctx, topic, opts)
		if err != nil {
			t.Fatalf("Trim(%+v): %v", opts, err)
		}
		if dry != n || again != n || n != want {
			t.Errorf("%s: TrimDryRun(%+v) = %d, then %d; Trim removed %d; want %d each", why, opts, dry, again, n, want)
		}
	}

	// Two pending entries ahead of eight unread ones: no trim removes any.
	e.publishN(b, "dry", 10)
	held := e.fetchN(b, []string{"dry"}, 2, 2)
	for _, opts := range []broker.TrimOptions{
		{MaxLen: 3},
		{MaxLen: 3, IncludeUnread: true},
		{OlderThan: time.Nanosecond},
		{OlderThan: time.Nanosecond, IncludeUnread: true},
	} {
		check("dry", opts, 0, "2 pending entries, then 8 unread")
	}
	e.ack(b, held...)

	// Nothing pending: only IncludeUnread removes the 3 oldest of 8.
	check("dry", broker.TrimOptions{MaxLen: 5}, 0, "8 unread entries")
	check("dry", broker.TrimOptions{MaxLen: 5, IncludeUnread: true}, 3, "8 unread entries")

	// The oldest of the 5 left pending again: nothing goes.
	held = e.fetchN(b, []string{"dry"}, 1, 1)
	check("dry", broker.TrimOptions{MaxLen: 1, IncludeUnread: true}, 0, "the oldest of 5 entries pending")
	e.ack(b, held...)

	// OlderThan: once the 4 left are old enough, both remove all of them.
	older := broker.TrimOptions{OlderThan: 20 * time.Millisecond, IncludeUnread: true}
	eventually(t, waitLimit, "TrimDryRun(OlderThan) never counted the 4 old entries", func() bool {
		n, err := dr.TrimDryRun(e.ctx, "dry", older)
		if err != nil {
			t.Fatalf("TrimDryRun(%+v): %v", older, err)
		}
		return n == 4
	})
	check("dry", older, 4, "4 old unread entries")
	e.expectNone(b, []string{"dry"}, 0, "after the trim removed everything")

	// A topic never used: nothing to remove.
	check("dry-none", broker.TrimOptions{MaxLen: 1, IncludeUnread: true}, 0, "a topic never used")

	// The options Trim rejects are rejected.
	for _, opts := range []broker.TrimOptions{{}, {MaxLen: 1, OlderThan: time.Second}, {MaxLen: -1}} {
		if _, err := dr.TrimDryRun(e.ctx, "dry", opts); err == nil {
			t.Errorf("TrimDryRun(%+v): nil error, want the error Trim returns", opts)
		}
	}
}
