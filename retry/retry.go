// Package retry defines how often and how late a failed job is retried:
// the [Policy] type, the default schedule operators know (5 s, 15 s, 60 s,
// then the dead-letter topic when the 4th attempt fails) and
// [Policy.Decide], which turns a handler's plain error into an outcome.
//
// It is the one definition of retrying in conveyor: the retry middleware
// (middleware.Retry) and the server's fallback for plain errors
// (server.Options.Retry) both apply a Policy.
//
// # Limits
//
// A job gets [Policy.Attempts] attempts, unless its producer set
// job.Job.MaxAttempts (broker.Message.MaxAttempts), which wins over the
// policy. The delay of each retry is computed from the job's Attempt alone,
// so it survives crashes and redeliveries to other workers.
//
// # Who decides
//
// Every outcome Decide returns matches [ErrDecided] with errors.Is. When the
// handler chain has the retry middleware, the errors that reach the server
// are already decided and the server's own policy is never consulted; a
// server whose Options.Retry was set explicitly logs a warning the first
// time it sees such an outcome.
package retry

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/conveyor-jobs/conveyor/job"
)

// Defaults of a [Policy].
const (
	// DefaultMaxAttempts is the number of attempts a job gets under the
	// default policy (and under an exponential policy that sets none):
	// the first run and three retries.
	DefaultMaxAttempts = 4
	// DefaultScheduleJitter is the randomization factor applied to a
	// Schedule when RandomizationFactor is zero: each delay varies by ±10%.
	DefaultScheduleJitter = 0.1
	// NoJitter, as a Policy's RandomizationFactor, makes every delay exact.
	NoJitter = -1.0
)

// DefaultSchedule is the delay before the 2nd, 3rd and 4th attempt under the
// default policy: 5 s, 15 s, 60 s; the job is dead-lettered when the 4th
// attempt fails. It returns a new slice on each call.
func DefaultSchedule() []time.Duration {
	return []time.Duration{5 * time.Second, 15 * time.Second, 60 * time.Second}
}

// Policy says how often and how late a failed job is retried. The delay of
// each retry is computed from the job's Attempt alone, so it survives a crash
// and a redelivery to another worker: nothing is kept in memory between
// attempts.
//
// There are two ways to give delays. With Schedule set, the retry after
// attempt n waits Schedule[n-1] (the last entry repeats). Otherwise, with
// InitialInterval set, delays grow exponentially like
// github.com/cenkalti/backoff/v4's ExponentialBackOff:
// InitialInterval × Multiplier^(n−1), capped at MaxInterval. With neither,
// the [DefaultSchedule] applies. In both cases the delay is then multiplied by
// a random factor in [1−RandomizationFactor, 1+RandomizationFactor].
//
// The zero Policy is the default: 5 s, 15 s, 60 s with ±10% jitter, then
// dead-letter after the 4th attempt.
type Policy struct {
	// Schedule lists the delays after the 1st, 2nd, … failed attempt.
	Schedule []time.Duration

	// InitialInterval is the delay after the first failed attempt of an
	// exponential policy. Zero with an empty Schedule means the default
	// schedule.
	InitialInterval time.Duration
	// Multiplier grows the delay per attempt; zero means
	// backoff.DefaultMultiplier (1.5).
	Multiplier float64
	// MaxInterval caps the delay (before jitter); zero means
	// backoff.DefaultMaxInterval (60 s).
	MaxInterval time.Duration

	// RandomizationFactor spreads delays so that jobs that failed together
	// do not retry together. Zero means DefaultScheduleJitter (0.1) for a
	// Schedule and backoff.DefaultRandomizationFactor (0.5) for an
	// exponential policy; [NoJitter] (any negative value) disables it.
	RandomizationFactor float64

	// MaxAttempts is the number of attempts, the first included; the job
	// is dead-lettered when attempt MaxAttempts fails. Zero means
	// len(Schedule)+1 for a schedule (4 by default) and
	// [DefaultMaxAttempts] for an exponential policy. 1 means never retry.
	MaxAttempts int

	// RetryIf decides whether an error is worth retrying; when it returns
	// false the job is dead-lettered at once (reason
	// [job.ReasonPermanent]). Nil retries every plain error.
	RetryIf func(error) bool

	// Rand returns a number in [0, 1) for the jitter; nil uses
	// math/rand/v2. Tests set it for exact delays. It must be safe for
	// concurrent use.
	Rand func() float64

	normalized bool
}

// PolicyFromBackOff returns an exponential Policy with b's InitialInterval,
// Multiplier, MaxInterval and RandomizationFactor. Only these settings are
// read: b's state (elapsed time, current interval) is not, since the delay is
// computed from the job's attempt. A nil b means backoff's defaults; a
// RandomizationFactor of 0 in b means no jitter.
func PolicyFromBackOff(b *backoff.ExponentialBackOff, maxAttempts int) Policy {
	if b == nil {
		b = backoff.NewExponentialBackOff()
	}
	rf := b.RandomizationFactor
	if rf == 0 {
		rf = NoJitter
	}
	return Policy{
		InitialInterval:     b.InitialInterval,
		Multiplier:          b.Multiplier,
		MaxInterval:         b.MaxInterval,
		RandomizationFactor: rf,
		MaxAttempts:         maxAttempts,
	}
}

// WithDefaults returns p with every default filled in: what Delay, Attempts
// and Decide apply. Deciding with the result skips that work on each call.
func (p Policy) WithDefaults() Policy { return p.normalize() }

// normalize returns p with its defaults filled in.
func (p Policy) normalize() Policy {
	if p.normalized {
		return p
	}
	p.normalized = true
	if len(p.Schedule) == 0 && p.InitialInterval <= 0 {
		p.Schedule = DefaultSchedule()
	}
	if len(p.Schedule) > 0 {
		p.Schedule = slices.Clone(p.Schedule)
		if p.RandomizationFactor == 0 {
			p.RandomizationFactor = DefaultScheduleJitter
		}
		if p.MaxAttempts <= 0 {
			p.MaxAttempts = len(p.Schedule) + 1
		}
	} else {
		if p.Multiplier <= 0 {
			p.Multiplier = backoff.DefaultMultiplier
		}
		if p.MaxInterval <= 0 {
			p.MaxInterval = backoff.DefaultMaxInterval
		}
		if p.RandomizationFactor == 0 {
			p.RandomizationFactor = backoff.DefaultRandomizationFactor
		}
		if p.MaxAttempts <= 0 {
			p.MaxAttempts = DefaultMaxAttempts
		}
	}
	if p.RandomizationFactor < 0 {
		p.RandomizationFactor = 0
	}
	if p.RandomizationFactor > 1 {
		p.RandomizationFactor = 1
	}
	if p.Rand == nil {
		p.Rand = rand.Float64
	}
	return p
}

// Delay returns the delay before the attempt after attempt (1-based), jitter
// included. It is what [Policy.Decide] passes to job.RetryIn.
func (p Policy) Delay(attempt int) time.Duration {
	np := p.normalize()
	return np.delay(attempt)
}

// Attempts returns the number of attempts p allows, defaults applied.
func (p Policy) Attempts() int {
	return p.normalize().MaxAttempts
}

func (p *Policy) delay(attempt int) time.Duration {
	attempt = max(attempt, 1)
	var base float64
	if len(p.Schedule) > 0 {
		base = float64(p.Schedule[min(attempt, len(p.Schedule))-1])
	} else {
		base = float64(p.InitialInterval) * math.Pow(p.Multiplier, float64(attempt-1))
		if math.IsInf(base, 0) || math.IsNaN(base) || base > float64(p.MaxInterval) {
			base = float64(p.MaxInterval)
		}
	}
	if rf := p.RandomizationFactor; rf > 0 {
		base *= 1 - rf + 2*rf*p.Rand()
	}
	if base >= math.MaxInt64 {
		return time.Duration(math.MaxInt64)
	}
	return max(time.Duration(base), 0)
}

// ErrDecided is matched, with errors.Is, by every outcome [Policy.Decide]
// returns for a plain error: the job's fate was decided by a retry policy.
// The server checks it to tell that the retry middleware is in its handler
// chain.
var ErrDecided = errors.New("conveyor: outcome decided by a retry policy")

// decided marks an outcome made by a Policy. It unwraps to the outcome
// (a *job.RetryError or *job.PermanentError), so job.Classify and
// errors.As see through it.
type decided struct{ error }

func (d decided) Unwrap() error { return d.error }

// Is reports ErrDecided as a match.
func (d decided) Is(target error) bool { return target == ErrDecided }

// Decide applies p to err, the error a handler returned for j:
//
//   - nil, and the outcomes a handler chose itself (job.RetryIn, job.Snooze,
//     job.Permanent), are returned as they are;
//   - when p.RetryIf rejects err, it returns a permanent error with reason
//     [job.ReasonPermanent];
//   - on the last attempt (j.Attempt at least the job's limit: j.MaxAttempts
//     when the producer set it, else p's), it returns a permanent error
//     wrapping [job.ErrRetriesExhausted] and err, with reason
//     [job.ReasonExhausted] ([job.ReasonPanic] when err holds a recovered
//     panic, a [*job.PanicError]);
//   - otherwise it returns job.RetryIn(delay, err), the delay computed from
//     j.Attempt.
//
// The errors it makes match [ErrDecided]. An attempt below 1 counts as the
// first. Decide is safe for concurrent use when p.Rand and p.RetryIf are.
func (p Policy) Decide(j *job.Job, err error) error {
	if err == nil {
		return nil
	}
	if o, _ := job.Classify(err); o != job.OutcomeFail {
		return err
	}
	np := p.normalize()
	return decided{np.decide(j, err)}
}

func (p *Policy) decide(j *job.Job, err error) error {
	if p.RetryIf != nil && !p.RetryIf(err) {
		return &job.PermanentError{Err: err, Reason: job.ReasonPermanent}
	}
	attempt := max(j.Attempt, 1)
	if attempt >= p.limit(j) {
		reason := job.ReasonExhausted
		var pe *job.PanicError
		if errors.As(err, &pe) {
			reason = job.ReasonPanic
		}
		return &job.PermanentError{
			Err:    fmt.Errorf("%w after %d attempts: %w", job.ErrRetriesExhausted, attempt, err),
			Reason: reason,
		}
	}
	return job.RetryIn(p.delay(attempt), err)
}

// limit returns the number of attempts j gets: its own MaxAttempts when the
// producer set one, else p's.
func (p *Policy) limit(j *job.Job) int {
	if j.MaxAttempts > 0 {
		return j.MaxAttempts
	}
	return p.MaxAttempts
}
