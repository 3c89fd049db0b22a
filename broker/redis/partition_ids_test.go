package redis

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/internal/redistest"
	"github.com/conveyor-jobs/conveyor/job"
)

// receiptID is the form of the job ID of a job published without one on a
// topic of 4 partitions: its first entry's receipt.
var receiptID = regexp.MustCompile(`^[0-9]+-[0-9]+@4/[0-3]$`)

// TestPartitionedJobIDs: on a partitioned topic, a job published without
// an ID takes its first entry's receipt as its ID, which no other job of
// the topic has, whose entry carries no id field, and which the job keeps
// across a retry; Cancel and JobState find it by that ID wherever it has
// moved in its partition, and a unique job's claim holds it.
func TestPartitionedJobIDs(t *testing.T) {
	redistest.StandaloneAndCluster(t, testPartitionedJobIDs)
}

func testPartitionedJobIDs(t *testing.T, rdb goredis.UniversalClient, ns string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := New(rdb, &Options{Namespace: ns, Block: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const topic = "ids"
	if err := b.SetPartitions(ctx, topic, 4); err != nil {
		t.Fatal(err)
	}

	// Published one at a time and in a batch: 16 distinct receipt IDs.
	var ids []string
	for range 8 {
		id, err := b.Publish(ctx, broker.Message{Topic: topic, Payload: []byte("x")})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	batch, err := b.PublishBatch(ctx, make8(topic))
	if err != nil {
		t.Fatal(err)
	}
	ids = append(ids, batch...)
	seen := map[string]bool{}
	for _, id := range ids {
		if !receiptID.MatchString(id) || seen[id] {
			t.Fatalf("job ID %q: want a receipt <entry ID>@4/<i> unique in the topic (IDs %q)", id, ids)
		}
		seen[id] = true
		k, entry, ok := b.parseReceipt(topic, id)
		if !ok {
			t.Fatalf("job ID %q names no partition", id)
		}
		ms, err := rdb.XRange(ctx, k.stream, entry, entry).Result()
		if err != nil || len(ms) != 1 {
			t.Fatalf("entry %s of %s: %v, %v", entry, k.stream, ms, err)
		}
		if _, has := ms[0].Values[fieldID]; has {
			t.Fatalf("entry of job %q carries an id field: %v", id, ms[0].Values)
		}
	}

	// Delivered with that ID, first under it as a receipt too.
	ds := fetchAll(t, b, len(ids), topic)
	byID := map[string]*broker.Delivery{}
	for _, d := range ds {
		if !seen[d.Job.ID] || d.Receipt != d.Job.ID {
			t.Fatalf("delivery: job ID %q, receipt %q; want a published ID as both", d.Job.ID, d.Receipt)
		}
		byID[d.Job.ID] = d
	}

	// Retried now: a new entry with the ID written out; Cancel and
	// JobState find it by the ID, not at the entry it names.
	now, later := byID[ids[0]], byID[ids[1]]
	if err := b.Retry(ctx, now, 0, job.Failure{Error: "again"}); err != nil {
		t.Fatal(err)
	}
	if err := b.Retry(ctx, later, time.Hour, job.Failure{Error: "later"}); err != nil {
		t.Fatal(err)
	}
	js, err := b.JobState(ctx, topic, ids[0])
	if err != nil || js.ID != ids[0] || js.State != broker.StateQueued || js.Receipt == ids[0] {
		t.Fatalf("JobState of the job retried now = %+v, %v; want it queued at a new entry", js, err)
	}
	js, err = b.JobState(ctx, topic, ids[1])
	if err != nil || js.ID != ids[1] || js.State != broker.StateDelayed {
		t.Fatalf("JobState of the job retried later = %+v, %v; want it delayed", js, err)
	}
	if res, err := b.Cancel(ctx, topic, ids[0]); err != nil || res != broker.CancelledQueued {
		t.Fatalf("Cancel of the job retried now = %v, %v; want CancelledQueued", res, err)
	}
	if res, err := b.Cancel(ctx, topic, ids[1]); err != nil || res != broker.CancelledDelayed {
		t.Fatalf("Cancel of the job retried later = %v, %v; want CancelledDelayed", res, err)
	}
	dls, err := b.DeadLetters(ctx, topic, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	cancelled := map[string]bool{}
	for _, dl := range dls {
		cancelled[dl.Job.ID] = true
	}
	if len(dls) != 2 || !cancelled[ids[0]] || !cancelled[ids[1]] {
		t.Fatalf("dead letters %+v; want the two cancelled jobs under their IDs", dls)
	}
	// A running job: the request names its delivery.
	running := byID[ids[2]]
	if res, err := b.Cancel(ctx, topic, ids[2]); err != nil || res != broker.CancelRequested {
		t.Fatalf("Cancel of a running job = %v, %v; want CancelRequested", res, err)
	}
	if got, err := b.CancelRequested(ctx, running); err != nil || len(got) != 1 || got[0] != running.Receipt {
		t.Fatalf("CancelRequested = %q, %v; want the running job's receipt", got, err)
	}

	// A unique job without an ID: the claim holds its receipt ID.
	uid, err := b.Publish(ctx, broker.Message{Topic: topic, UniqueKey: "u", Payload: []byte("x")})
	if err != nil || !receiptID.MatchString(uid) {
		t.Fatalf("unique Publish = %q, %v; want a receipt ID", uid, err)
	}
	dup, err := b.Publish(ctx, broker.Message{Topic: topic, UniqueKey: "u", Payload: []byte("y")})
	var de *broker.DuplicateError
	if !errors.As(err, &de) || dup != uid || de.ID != uid {
		t.Fatalf("duplicate Publish = %q, %v; want %q and a DuplicateError naming it", dup, err, uid)
	}
	d := fetchAll(t, b, 1, topic)[0]
	if d.Job.ID != uid || d.Job.UniqueKey != "u" {
		t.Fatalf("unique delivery %+v; want job %q", d.Job, uid)
	}
	if err := b.Ack(ctx, d); err != nil {
		t.Fatal(err)
	}
	if id, err := b.Publish(ctx, broker.Message{Topic: topic, UniqueKey: "u", Payload: []byte("z")}); err != nil || id == uid {
		t.Fatalf("Publish after the ack = %q, %v; want a new job (the ack released the claim)", id, err)
	}
}

// make8 returns 8 messages of topic without IDs.
func make8(topic string) []broker.Message {
	ms := make([]broker.Message, 8)
	for i := range ms {
		ms[i] = broker.Message{Topic: topic, Payload: []byte("b")}
	}
	return ms
}

// TestJobStateDeadLetterNumbering: a dead-letter stream numbers its
// entries apart from its stream, so another job's dead letter may sit at
// the entry ID of a finished job's first entry; JobState of the finished
// job must not take it for the job's own. And a dead letter written
// without an id field (by another producer) is replayed under the job ID
// it is listed with: its receipt. On one partition and on four.
func TestJobStateDeadLetterNumbering(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, n := range []int{1, 4} {
		t.Run(fmt.Sprintf("partitions=%d", n), func(t *testing.T) {
			b, err := New(rdb, &Options{Namespace: fmt.Sprintf("%s-%d", srv.Namespace, n), Block: 10 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			const topic = "numbered"
			if n > 1 {
				if err := b.SetPartitions(ctx, topic, n); err != nil {
					t.Fatal(err)
				}
			}
			id, err := b.Publish(ctx, broker.Message{Topic: topic, Payload: []byte("a")})
			if err != nil {
				t.Fatal(err)
			}
			k, entry := b.receiptKeys(topic, id)
			if err := b.Ack(ctx, fetchAll(t, b, 1, topic)...); err != nil {
				t.Fatal(err)
			}
			// Another job's dead letter at the finished job's entry ID.
			if err := rdb.XAdd(ctx, &goredis.XAddArgs{Stream: k.dlq, ID: entry, Values: []any{"payload", "b", "id", "other", "reason", "error"}}).Err(); err != nil {
				t.Fatal(err)
			}
			if js, err := b.JobState(ctx, topic, id); !errors.Is(err, broker.ErrNotFound) {
				t.Fatalf("JobState of the acknowledged job = %+v, %v; want ErrNotFound", js, err)
			}
			if js, err := b.JobState(ctx, topic, "other"); err != nil || js.State != broker.StateDead {
				t.Fatalf("JobState of the dead job = %+v, %v; want dead", js, err)
			}

			// A dead letter without an id field, replayed.
			if err := rdb.XAdd(ctx, &goredis.XAddArgs{Stream: k.dlq, Values: []any{"payload", "raw"}}).Err(); err != nil {
				t.Fatal(err)
			}
			dls, err := b.DeadLetters(ctx, topic, "", 10)
			if err != nil || len(dls) != 2 || dls[1].Job.ID != dls[1].ID {
				t.Fatalf("DeadLetters = %+v, %v; want the raw one listed under its receipt as its job ID", dls, err)
			}
			if moved, err := b.ReplayDeadLetters(ctx, topic, []string{dls[1].ID}); err != nil || moved != 1 {
				t.Fatalf("ReplayDeadLetters = %d, %v", moved, err)
			}
			d := fetchAll(t, b, 1, topic)[0]
			if d.Job.ID != dls[1].Job.ID || string(d.Job.Payload) != "raw" {
				t.Fatalf("replayed job %q (%q); want the listed job ID %q", d.Job.ID, d.Job.Payload, dls[1].Job.ID)
			}
		})
	}
}
