package job

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors. They are matched with [errors.Is].
var (
	// ErrNoHandler is returned (as a permanent failure) for a job whose topic
	// has no registered handler.
	ErrNoHandler = errors.New("conveyor: no handler for topic")
	// ErrSnoozed is the error a [Snooze] outcome unwraps to.
	ErrSnoozed = errors.New("conveyor: job snoozed")
	// ErrRetriesExhausted marks a failure on the last allowed attempt.
	ErrRetriesExhausted = errors.New("conveyor: retries exhausted")
)

// RetryError asks for the job to be re-enqueued after Delay, spending an
// attempt. Create it with [RetryIn].
type RetryError struct {
	Delay time.Duration
	Err   error
}

// RetryIn returns an error that re-enqueues the job after d, spending an
// attempt. err is the cause recorded with the job; it may be nil.
func RetryIn(d time.Duration, err error) error {
	return &RetryError{Delay: d, Err: err}
}

func (e *RetryError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("conveyor: retry in %v", e.Delay)
	}
	return fmt.Sprintf("retry in %v: %v", e.Delay, e.Err)
}

// Unwrap returns the cause.
func (e *RetryError) Unwrap() error { return e.Err }

// PermanentError dead-letters the job at once, whatever attempts remain.
// Create it with [Permanent].
type PermanentError struct {
	Err error
	// Reason is recorded in the dead letter's [Failure.Reason]; empty means
	// [ReasonPermanent].
	Reason string
	// Handler optionally names the handler that failed.
	Handler string
}

// Permanent returns an error that sends the job to its dead-letter topic now,
// without further retries. A nil err is recorded as "permanent failure".
func Permanent(err error) error {
	return &PermanentError{Err: err}
}

func (e *PermanentError) Error() string {
	if e.Err == nil {
		return "conveyor: permanent failure"
	}
	return e.Err.Error()
}

// Unwrap returns the cause.
func (e *PermanentError) Unwrap() error { return e.Err }

// SnoozeError re-enqueues the job after Delay without spending an attempt:
// the job did not run (it was rate-limited, or its circuit was open). Create it
// with [Snooze].
type SnoozeError struct {
	Delay time.Duration
	// Cause optionally says why the job was snoozed.
	Cause error
}

// Snooze returns an error that re-enqueues the job after d without spending
// an attempt.
func Snooze(d time.Duration) error {
	return &SnoozeError{Delay: d}
}

// SnoozeBecause is [Snooze] with a cause, for logs and metrics.
func SnoozeBecause(d time.Duration, cause error) error {
	return &SnoozeError{Delay: d, Cause: cause}
}

func (e *SnoozeError) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("snoozed for %v: %v", e.Delay, e.Cause)
	}
	return fmt.Sprintf("conveyor: snoozed for %v", e.Delay)
}

// Is reports ErrSnoozed as a match.
func (e *SnoozeError) Is(target error) bool { return target == ErrSnoozed }

// Unwrap returns the cause.
func (e *SnoozeError) Unwrap() error { return e.Cause }

// Outcome is what a handler's error asks the broker to do with a job.
type Outcome int

// The outcomes, from [Classify].
const (
	// OutcomeAck: the job succeeded (nil error).
	OutcomeAck Outcome = iota
	// OutcomeFail: a plain error; the retry policy decides.
	OutcomeFail
	// OutcomeRetry: re-enqueue after a delay, spending an attempt.
	OutcomeRetry
	// OutcomeSnooze: re-enqueue after a delay, spending no attempt.
	OutcomeSnooze
	// OutcomeDeadLetter: send to the dead-letter topic now.
	OutcomeDeadLetter
)

var outcomeNames = [...]string{"ack", "fail", "retry", "snooze", "dead-letter"}

// String returns "ack", "fail", "retry", "snooze" or "dead-letter".
func (o Outcome) String() string {
	if o < 0 || int(o) >= len(outcomeNames) {
		return fmt.Sprintf("outcome(%d)", int(o))
	}
	return outcomeNames[o]
}

// Classify tells which outcome err asks for and, for retries and snoozes, the
// delay. The outermost outcome wins: Permanent(RetryIn(...)) dead-letters.
func Classify(err error) (Outcome, time.Duration) {
	if err == nil {
		return OutcomeAck, 0
	}
	for e := err; e != nil; {
		switch v := e.(type) {
		case *PermanentError:
			return OutcomeDeadLetter, 0
		case *RetryError:
			return OutcomeRetry, max(v.Delay, 0)
		case *SnoozeError:
			return OutcomeSnooze, max(v.Delay, 0)
		}
		switch u := e.(type) {
		case interface{ Unwrap() error }:
			e = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, inner := range u.Unwrap() {
				if o, d := Classify(inner); o != OutcomeFail {
					return o, d
				}
			}
			return OutcomeFail, 0
		default:
			e = nil
		}
	}
	return OutcomeFail, 0
}

// FailureOf builds the [Failure] recorded for a job that failed with err on
// topic. Reason comes from a [PermanentError] when there is one, else from
// the known sentinels, else fallback. Error is err's text without the words
// of the outcome err asks for: RetryIn(d, cause) records cause's text, not
// "retry in d: …", whose delay says nothing of the failure and is stale as
// soon as the job is snoozed or its retry is due. When err holds a
// [PanicError], the error text ends with the topmost frames of the panic
// site (" [at pkg.F (file.go:12) < …]") and Stack holds the whole stack.
func FailureOf(j *Job, err error, fallback string, at time.Time) Failure {
	f := Failure{Reason: fallback, Origin: j.Topic, At: at}
	if err != nil {
		f.Error = failureText(err)
	}
	var pe *PermanentError
	if errors.As(err, &pe) {
		f.Reason = ReasonPermanent
		if pe.Reason != "" {
			f.Reason = pe.Reason
		}
		f.Handler = pe.Handler
	}
	var panicked *PanicError
	if errors.As(err, &panicked) {
		f.Error += panicked.where()
		f.Stack = string(panicked.Stack)
	}
	switch {
	case errors.Is(err, ErrNoHandler):
		f.Reason = ReasonNoHandler
	case errors.Is(err, ErrRetriesExhausted) && f.Reason == ReasonPermanent:
		f.Reason = ReasonExhausted
	}
	if j.Failure != nil && j.Failure.Origin != "" {
		f.Origin = j.Failure.Origin
	}
	return f
}

// failureText returns err's text, looking through the outcome errors that
// wrap it directly ([RetryError], [PermanentError]) to their cause.
func failureText(err error) string {
	for {
		switch e := err.(type) {
		case *RetryError:
			if e.Err == nil {
				return e.Error()
			}
			err = e.Err
		case *PermanentError:
			if e.Err == nil {
				return e.Error()
			}
			err = e.Err
		default:
			return err.Error()
		}
	}
}
