// Package memory is an in-process [broker.Broker] with the semantics of the
// Redis broker, for tests, demos and single-process applications. Nothing it
// holds survives the process.
//
// # Use
//
//	b := memory.New(nil) // lease 30s, 4 attempts, Fetch waits up to 1s
//	defer b.Close()
//	id, err := b.Publish(ctx, broker.Message{Topic: "emails", Payload: []byte(`{"to":"a@b.c"}`)})
//	ds, err := b.Fetch(ctx, []string{"emails"}, 10)
//	// … handle ds …
//	err = b.Ack(ctx, ds...)
//
// # Semantics
//
// Each topic has a FIFO queue of ready jobs. Delayed jobs (Message.Delay,
// Message.ProcessAt, Retry and Snooze delays) wait in a min-heap and become
// ready when due. Fetch leases jobs to one consumer for [Options.Lease]; a
// delivery neither settled nor extended in time goes back to the front of its
// topic and is redelivered, to any consumer, as the next attempt. A job
// delivered [Options.MaxDeliveries] times in a row with no outcome is
// dead-lettered with reason job.ReasonMaxDeliveries instead; a retried or
// snoozed job starts a new count. Retry, Snooze and
// DeadLetter each run under one lock, so they are atomic. Dead letters of
// topic T are fetchable as topic T.dlq.
//
// # Partitions
//
// [Broker.SetPartitions] splits a topic into partitions, as on Redis: a job
// with a Message.Key goes to partition broker.PartitionFor(Key, n), so the
// jobs of one key are delivered in the order they were published; a unique
// job without a key goes by its UniqueKey, and other jobs to the partitions
// in turn. Fetch takes one job from each partition with ready jobs in turn,
// so a long backlog in one partition does not hold back the others; weights
// and strict priorities are between topics, and the partitions of a topic
// share its turn. A job stays in its partition: redeliveries, retries,
// snoozes, its dead letter and a replay of it all come back there, so
// partitions that a lower count leaves out drain until empty. The members
// and the callback that [Broker.OpenBatch] publishes are routed as Publish
// routes jobs; a chain link dead-lettered without running goes to the
// partition it would have been published to.
// [Broker.Inspect] adds the partitions up; [Broker.InspectPartitions] lists
// them one by one.
//
// # Consumers
//
// [New] returns the root broker. [Broker.Consumer] returns views that share
// its jobs under other consumer names, like workers of one Redis consumer
// group. Closing a view stops only that view (its leases expire as a crashed
// worker's would); closing the root stops all.
//
// # Administration
//
// A Broker is a [broker.Inspector] (Topics, Inspect), a [broker.Trimmer] and
// a [broker.HealthChecker]. Its dead letters are listed, replayed and purged
// through [Broker.DeadLetterAdmin], which returns a [broker.DeadLetterAdmin]:
// *Broker cannot be one itself, because [broker.Broker] already has a
// DeadLetter method with another signature.
//
// # Waiting
//
// A Fetch that finds nothing waits for [Options.FetchWait]. Publishing wakes
// only as many waiting fetchers as the new jobs need; a single timer, armed
// only while a fetcher waits, wakes them when a delayed job falls due or a
// lease expires. No goroutine runs in the background, before or after Close.
package memory
