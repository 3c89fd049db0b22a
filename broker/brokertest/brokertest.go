// Package brokertest is the conformance suite for implementations of
// [broker.Broker], in the manner of testing/slogtest: a broker's own tests
// call [Run] with a [Factory], and the suite checks the contract every part
// of conveyor relies on.
//
//	func TestConformance(t *testing.T) {
//		brokertest.Run(t, func(t *testing.T, opts brokertest.Options) func(string) broker.Broker {
//			root := memory.New(&memory.Options{Lease: opts.Lease, MaxDeliveries: opts.MaxDeliveries})
//			t.Cleanup(func() { root.Close() })
//			return func(consumer string) broker.Broker { return root.Consumer(consumer) }
//		})
//	}
//
// # What it checks
//
// Publishing and fetching (payload, headers, IDs, EnqueuedAt, attempts,
// batches, FIFO order within a topic, several topics, the fetch limit),
// delayed jobs, Retry, Snooze and DeadLetter with the records they keep,
// leases (redelivery to another consumer after expiry, Extend, exclusivity,
// poison protection with job.ReasonMaxDeliveries), concurrent publishers and
// consumers, Close and context cancellation. When the broker implements
// [broker.Inspector], [broker.DeadLetterAdmin], [broker.Trimmer],
// [broker.TrimDryRunner], [broker.PendingLister], [broker.DelayedLister],
// [broker.DelayedDeleter], [broker.TickPublisher], [broker.Canceller],
// [broker.CancelWatcher], [broker.PriorityFetcher] or [broker.Pauser], their
// behaviour is checked too; otherwise those subtests are skipped.
//
// # Details the suite pins down
//
// Beyond the doc comments of [broker.Broker], the suite expects:
//   - Publish and PublishBatch copy the payload and headers they are given;
//     PublishBatch(nil) returns no IDs and no error; an empty topic is
//     [broker.ErrInvalidMessage].
//   - A job's MaxAttempts and Timeout, set on its Message, come back
//     unchanged after Retry, Snooze, DeadLetter and replay; out-of-range
//     values are [broker.ErrInvalidMessage].
//   - A job's Topic is the topic it was fetched from: T.dlq for a dead letter,
//     whose Failure.Origin is T and whose Attempt is the attempt that failed.
//   - A second Ack of a delivery is harmless; Retry or DeadLetter of a
//     delivery already settled returns an error (the job is not duplicated).
//   - Poison protection delivers a job exactly MaxDeliveries times when every
//     lease expires, then dead-letters it with Attempt MaxDeliveries. It
//     counts deliveries of one entry, not attempts: a job retried to any
//     attempt is delivered again after a lost lease, and a retry starts a
//     new count.
//   - Dead-letter IDs order the dead letters: DeadLetters(after) pages through
//     them oldest first. Replayed jobs return to T with Attempt 1, no Failure,
//     their ID, payload and headers.
//   - Trim with MaxLen removes exactly the oldest entries beyond MaxLen,
//     unless that would reach the oldest pending entry.
//   - PendingEntries lists leased jobs oldest entry first (by receipt), each
//     with its holder and a delivery count of 1 after one delivery; an
//     acknowledged job is no longer listed.
//   - DelayedJobs lists soonest due first, each job with the attempt it will
//     be delivered as (a retry's next attempt, a snooze's unchanged one) and
//     its failure; Snooze is nil unless the job was snoozed through
//     [broker.SnoozeRecorder], which records the cause and the time.
//   - Listing an unknown topic returns nothing and no error.
//   - PublishTick enqueues a tick only when it is after the entry's last
//     tick, for every consumer of the queue space; a refused tick returns
//     the last tick's job ID and enqueues nothing; re-registering an entry
//     keeps its last tick; Schedules lists registered entries only.
//   - TrimDryRun removes nothing and returns exactly what Trim with the same
//     options removes right after it, with pending entries present or not;
//     it rejects the options Trim rejects.
//   - Cancel of a queued or delayed job dead-letters it at once with
//     [broker.CancelFailure]; of a delivered job, it records a request that
//     CancelRequested reports for that delivery (and its redelivery after a
//     lost lease) until it is settled; a retry is a new delivery without
//     the request. A settled job, a dead letter, an unknown ID or topic is
//     [broker.ErrNotFound].
//   - A unique key (Message.UniqueKey) is held by one job of a topic while
//     it is delayed, queued, running (crashed workers included) or waiting
//     to retry; a duplicate Publish returns the holder's ID and a
//     *broker.DuplicateError, and PublishBatch reports duplicates per index
//     in BatchError.Duplicates. The ack releases the key, or keeps it until
//     UniqueFor after the job's EnqueuedAt; dead-lettering (poison
//     protection's too) and the cancel of a queued or delayed job release
//     it; a replay takes it again, or leaves the dead letter and returns
//     ErrDuplicate when another job holds it.
//
// # Timing
//
// The suite reads the lease from [broker.Broker.Lease] and expects it to be
// short (a few hundred milliseconds). It waits on conditions with deadlines,
// never on fixed sleeps, and asserts no timing other than "not delivered
// before due". Run it with -race.
package brokertest

import (
	"context"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
)

// Options are the timings the suite needs from the broker under test.
type Options struct {
	// Lease is the lease the suite asks for: short, e.g. 300ms. A factory
	// may choose another; the suite reads the real one from Broker.Lease.
	Lease time.Duration
	// MaxDeliveries is the poison limit: how many deliveries of one entry
	// may end with no outcome. The factory must honour it.
	MaxDeliveries int
	// Partitions, when above 1, runs every subtest on partitioned topics:
	// the suite calls [broker.Partitioner.SetPartitions] with it on every
	// topic it uses before using them (a broker that is no
	// broker.Partitioner fails the suite), and runs the partition
	// subtests, which are skipped otherwise. 0 or 1: topics are not
	// partitioned.
	Partitions int
}

// Factory returns a constructor of consumers that share ONE fresh, isolated
// queue space (a fresh namespace): brokers made by the returned func see the
// same jobs. The suite closes every broker it makes. consumer names the
// consumer (Redis consumer name).
//
// Run calls the Factory once per subtest, with that subtest's t, so resources
// registered with t.Cleanup are released per subtest.
type Factory func(t *testing.T, opts Options) func(consumer string) broker.Broker

// Run runs the conformance suite as subtests of t, each on a fresh queue
// space made by f with Options{Lease: 300ms, MaxDeliveries: 3}.
func Run(t *testing.T, f Factory) {
	t.Helper()
	RunWith(t, f, Options{})
}

// RunWith is [Run] with opts: its Lease and MaxDeliveries replace the
// defaults when set, and Partitions > 1 runs the suite on partitioned
// topics.
func RunWith(t *testing.T, f Factory, opts Options) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(newEnv(t, f, opts))
		})
	}
}

var cases = []struct {
	name string
	run  func(*env)
}{
	{"RoundTrip", testRoundTrip},
	{"GeneratedIDs", testGeneratedIDs},
	{"PublishBatch", testPublishBatch},
	{"InvalidMessage", testInvalidMessage},
	{"FIFO", testFIFO},
	{"ManyTopics", testManyTopics},
	{"TopicsBacklog", testTopicsBacklog},
	{"FetchMax", testFetchMax},
	{"Delayed", testDelayed},
	{"Retry", testRetry},
	{"Snooze", testSnooze},
	{"DeadLetter", testDeadLetter},
	{"JobLimits", testJobLimits},
	{"Redelivery", testRedelivery},
	{"Extend", testExtend},
	{"Poison", testPoison},
	{"PoisonCountsDeliveriesNotAttempts", testPoisonCountsDeliveries},
	{"AckedNotRedelivered", testAckedNotRedelivered},
	{"Concurrent", testConcurrent},
	{"CloseUnblocksFetch", testCloseUnblocksFetch},
	{"MethodsAfterClose", testMethodsAfterClose},
	{"FetchCancelled", testFetchCancelled},
	{"Inspect", testInspect},
	{"DeadLettersPaging", testDeadLettersPaging},
	{"ReplayDeadLetters", testReplay},
	{"PurgeDeadLetters", testPurge},
	{"Trim", testTrim},
	{"TrimDryRun", testTrimDryRun},
	{"PendingEntries", testPendingEntries},
	{"DelayedJobs", testDelayedJobs},
	{"DeleteDelayed", testDeleteDelayed},
	{"Schedule", testSchedule},
	{"ScheduleRace", testScheduleRace},
	{"CancelQueued", testCancelQueued},
	{"CancelDelayed", testCancelDelayed},
	{"CancelRunning", testCancelRunning},
	{"CancelRedelivered", testCancelRedelivered},
	{"CancelNotFound", testCancelNotFound},
	{"WeightedShares", testWeightedShares},
	{"WeightedIdleTopic", testWeightedIdleTopic},
	{"StrictOrder", testStrictOrder},
	{"Pause", testPause},
	{"PauseWaitingFetch", testPauseWaitingFetch},
	{"PauseDelayed", testPauseDelayed},
	{"PauseLeases", testPauseLeases},
	{"PauseKept", testPauseKept},
	{"UniqueHeld", testUniqueHeld},
	{"UniqueKept", testUniqueKept},
	{"UniqueDeadLetter", testUniqueDeadLetter},
	{"UniqueCrash", testUniqueCrash},
	{"UniquePoison", testUniquePoison},
	{"UniqueBatch", testUniqueBatch},
	{"UniqueInvalid", testUniqueInvalid},
	{"UniqueCancel", testUniqueCancel},
	{"PartitionKeyOrder", testPartitionKeyOrder},
	{"PartitionFairness", testPartitionFairness},
	{"PartitionResize", testPartitionResize},
}

// env is one subtest's queue space.
type env struct {
	t    *testing.T
	ctx  context.Context
	opts Options
	make func(consumer string) broker.Broker

	partitioned bool // the suite's topics were given Options.Partitions
}

func newEnv(t *testing.T, f Factory, given Options) *env {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	opts := Options{Lease: 300 * time.Millisecond, MaxDeliveries: 3, Partitions: given.Partitions}
	if given.Lease > 0 {
		opts.Lease = given.Lease
	}
	if given.MaxDeliveries > 0 {
		opts.MaxDeliveries = given.MaxDeliveries
	}
	return &env{t: t, ctx: ctx, opts: opts, make: f(t, opts)}
}

// open makes a consumer and closes it when the subtest ends.
func (e *env) open(consumer string) broker.Broker {
	e.t.Helper()
	b := e.make(consumer)
	if b == nil {
		e.t.Fatalf("factory returned a nil broker for consumer %q", consumer)
	}
	e.t.Cleanup(func() { _ = b.Close() })
	if e.opts.Partitions > 1 && !e.partitioned {
		e.partitioned = true
		e.partitionAll(b)
	}
	return b
}
