// Package redis is conveyor's broker on Redis Streams: one stream per topic
// read through one consumer group per application, a sorted set of delayed
// jobs, and a dead-letter stream per topic, all under one hash tag so a topic
// lives in one Cluster slot.
//
// # Connecting
//
//	b, err := redis.Open("rediss://worker:s3cret@redis.internal:6380/0", &redis.Options{
//		Namespace: "agents",
//		TLS:       &redis.TLSOptions{CAFile: "/etc/conveyor/ca.pem"},
//	})
//
// or, with a go-redis client you configure yourself (single node, Sentinel or
// Cluster), [New].
//
// # Keys and wire format
//
// Topic T uses <ns>:{T}:stream, <ns>:{T}:delayed (score = due unix ms) and
// <ns>:{T}:dlq; its dead-letter topic T.dlq is read from <ns>:{T}:dlq. The set
// <ns>:topics registers the topics published to or fetched from; Topics also
// finds, with SCAN, streams written by other producers. A stream entry is a job when it has a payload
// field; id, attempt, enqueued_at (unix ms) and h.<name> headers are optional,
// so any client can enqueue with one XADD:
//
//	XADD conveyor:{orchestrate}:stream * payload '{"x":1}'
//
// # Delivery
//
// Fetch reads with XREADGROUP and a short BLOCK. Every ClaimInterval it also
// promotes due delayed jobs and recovers entries whose lease expired
// (XAUTOCLAIM); a recovered entry counts as an attempt, and an entry already
// delivered MaxDeliveries times with no outcome is dead-lettered
// (job.ReasonMaxDeliveries) instead of being delivered again. Ack is XACK +
// XDEL, pipelined; Retry, Snooze and DeadLetter are each one Lua script, so a
// crash cannot lose or duplicate a job. Extend renews leases with XCLAIM
// JUSTID, only for entries this consumer still owns.
//
// # Administration
//
// A Broker is also a broker.Inspector (Topics, Inspect), a
// broker.DeadLetterAdmin (DeadLetters, DeadLetterByID, ReplayDeadLetters,
// PurgeDeadLetters), a broker.Trimmer (Trim never removes a pending entry;
// TrimDryRun counts what it would remove) and a broker.HealthChecker
// (Check). PendingEntries, DelayedJobs and DeleteDelayed show in-flight and
// delayed jobs; ServerInfo the server's version; Lost, DeadLetterOverflows
// and StaleSettles count the events an operator should know about.
//
// # Permissions
//
// Every operation works as a Redis ACL user confined to the namespace's
// keys (~<ns>:*) and granted only the commands listed in docs/redis.md (A
// least-privilege ACL user). A command the user may not run, inside a Lua script or
// not, gives an error whose explanation starts with NOPERM and names the
// command to grant, with the wording of Redis 7.0, of Redis 7.2 and later,
// and of Valkey.
package redis
