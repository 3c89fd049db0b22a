// Package schedule enqueues periodic jobs: each tick of an entry's cron
// spec or interval publishes one job to the entry's topic.
//
// # Exactly once, with no leader
//
// Every worker may run a [Scheduler] with the same entries. The broker
// claims a tick in the same atomic step as the enqueue of its job
// ([broker.TickPublisher]: one Lua script on Redis, holding the entry's last
// tick in the topic's hash slot): a tick at or before the entry's last
// fired tick is refused. So each tick is enqueued once however many
// schedulers run, when one of them dies, and whatever the skew between their
// clocks; a scheduler whose clock is behind finds the tick taken.
//
//	s, err := schedule.New(b, []schedule.Entry{
//		{Name: "nightly-report", Spec: "0 2 * * *", TimeZone: "Europe/Paris", Topic: "reports"},
//		{Name: "heartbeat", Every: 30 * time.Second, Topic: "heartbeats", Missed: schedule.RunOnce},
//	}, nil)
//	if err != nil {
//		return err
//	}
//	return s.Run(ctx) // until ctx ends
//
// # Jobs
//
// A tick's job has the ID "sched:<entry>:<tick in unix ms>" ([JobID]), the
// entry's payload and headers, and two headers more:
// broker.HeaderScheduledAt ("conveyor-scheduled-at", the tick in RFC 3339
// with milliseconds, UTC) and broker.HeaderSchedule ("conveyor-schedule",
// the entry's name).
//
// # Missed ticks
//
// The broker keeps each entry's last fired tick. When a scheduler starts,
// the ticks after it and before the start were missed (no scheduler ran);
// the entry's [Missed] policy says which of them fire: none ([Skip], the
// default), the newest ([RunOnce]) or the newest Entry.CatchUp ([CatchUp]).
package schedule
