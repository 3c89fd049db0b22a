package job

import "time"

// Job is one unit of work read from a broker.
//
// The payload stays bytes: typing happens at the edge, in [Typed]. A handler may
// read every field; it must not keep the Job after it returns, and it must not
// change Topic or ID, which the broker uses to settle the job.
type Job struct {
	// ID identifies the job across retries. Producers may set it; brokers
	// generate one when it is empty.
	ID string
	// Topic names the queue the job was read from. Dead letters of topic T
	// are read from topic T + ".dlq" (see [DeadLetterTopic]).
	Topic string
	// Payload is the job's body, opaque to conveyor (JSON by convention).
	Payload []byte
	// Headers carries metadata such as a tenant, trace context or content
	// type. It may be nil.
	Headers map[string]string
	// Attempt is the 1-based number of this attempt, at most [MaxAttempt].
	// A retry spends an attempt; a snooze does not; a redelivery after a
	// crash does.
	Attempt int
	// EnqueuedAt is when the job was first enqueued; retries keep it.
	EnqueuedAt time.Time
	// MaxAttempts is the number of attempts this job gets, the first
	// included, as its producer set it; it wins over the retry policy's.
	// Zero means the policy decides.
	MaxAttempts int
	// Timeout bounds each run of the handler for this job, as its producer
	// set it; it wins over the timeout middleware's deadline. Zero means the
	// middleware decides.
	Timeout time.Duration
	// UniqueKey is the job's unique key in its topic, as its producer set
	// it (broker.Message.UniqueKey); "" when the job is not unique.
	UniqueKey string
	// UniqueFor is how long after EnqueuedAt the unique key stays held once
	// the job succeeded (broker.Message.UniqueFor); zero releases it at
	// once.
	UniqueFor time.Duration
	// Key is the job's ordering key as its producer set it
	// (broker.Message.Key): jobs with one key stay in order on a topic
	// split into partitions. "" when the job has none.
	Key string
	// Failure describes the last failure of a job that was retried or
	// dead-lettered. It is nil on a job that has not failed yet.
	Failure *Failure
}

// MaxAttempt bounds [Job.Attempt]: brokers read a larger recorded attempt
// as MaxAttempt (with a warning) and never count past it, so that no
// arithmetic on attempts overflows.
const MaxAttempt = 1_000_000

// Header returns the value of header name, or "" when it is not set.
func (j *Job) Header(name string) string {
	return j.Headers[name]
}

// Failure records why a job was retried or dead-lettered. Brokers store it with
// the job so that operators see the error text, the attempt it happened on, and
// the topic a dead letter came from.
type Failure struct {
	// Error is the error text the handler returned.
	Error string
	// Reason is a short machine-readable cause: one of the Reason constants.
	Reason string
	// Handler names the handler that failed, when the dead-letter middleware
	// or the mux knows it.
	Handler string
	// Origin is the topic the job failed on (for a dead letter, the topic it
	// came from).
	Origin string
	// At is when the failure happened.
	At time.Time
	// Stack is the stack of a handler that panicked (see [PanicError]),
	// kept out of Error so that the error text stays one line. Brokers may
	// bound its size; it is empty for other failures.
	Stack string
}

// Reasons recorded in [Failure.Reason].
const (
	// ReasonError: the handler returned an error and the job will be retried.
	ReasonError = "error"
	// ReasonPermanent: the handler returned [Permanent].
	ReasonPermanent = "permanent"
	// ReasonExhausted: the job failed on its last allowed attempt.
	ReasonExhausted = "exhausted"
	// ReasonUndecodable: the payload could not be decoded by a typed handler.
	ReasonUndecodable = "undecodable"
	// ReasonNoHandler: no handler is registered for the job's topic.
	ReasonNoHandler = "no-handler"
	// ReasonMaxDeliveries: the job was delivered too many times without an
	// outcome (its worker crashed or lost its lease every time).
	ReasonMaxDeliveries = "max-deliveries"
	// ReasonPanic: the handler panicked on its last allowed attempt.
	ReasonPanic = "panic"
	// ReasonCancelled: an operator cancelled the job (see [ErrCancelled]).
	ReasonCancelled = "cancelled"
)

// DeadLetterSuffix is appended to a topic to name its dead-letter topic.
const DeadLetterSuffix = ".dlq"

// DeadLetterTopic returns the dead-letter topic of topic: topic + ".dlq".
func DeadLetterTopic(topic string) string {
	return topic + DeadLetterSuffix
}
