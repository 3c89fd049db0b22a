package middleware

import (
	"context"
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
// included. It is what [Retry] passes to job.RetryIn.
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

// Retry returns middleware that applies p to plain errors (a *job.PanicError and
// a *TimeoutError are plain errors too):
//
//   - with attempts left, it returns job.RetryIn(delay, err), the delay
//     computed from the job's Attempt;
//   - on the last attempt (Attempt ≥ MaxAttempts), it returns a permanent
//     error wrapping [job.ErrRetriesExhausted] and err, with reason
//     [job.ReasonExhausted] ([job.ReasonPanic] for a panic), which the
//     broker dead-letters;
//   - when p.RetryIf rejects err, it returns job.Permanent(err).
//
// Outcome errors the handler chose itself — job.RetryIn, job.Snooze,
// job.Permanent — pass through untouched, as does nil. A handler that returns
// job.RetryIn therefore chooses its own limit too: it should check j.Attempt
// (or return a plain error and let the policy count).
func Retry(p Policy) job.Middleware {
	np := p.normalize()
	return RetryFunc(func(string) Policy { return np })
}

// RetryByTopic is [Retry] with a policy per topic, taken from policies, and
// def for topics not in the map. The map is copied.
func RetryByTopic(policies map[string]Policy, def Policy) job.Middleware {
	m := make(map[string]Policy, len(policies))
	for k, v := range policies {
		m[k] = v.normalize()
	}
	nd := def.normalize()
	return RetryFunc(func(topic string) Policy {
		if p, ok := m[topic]; ok {
			return p
		}
		return nd
	})
}

// RetryFunc is [Retry] with the policy chosen per job by topic. policyOf is
// called once per failed job and must be safe for concurrent use.
func RetryFunc(policyOf func(topic string) Policy) job.Middleware {
	return func(next job.Handler) job.Handler {
		return job.HandlerFunc(func(ctx context.Context, j *job.Job) error {
			err := next.ProcessJob(ctx, j)
			if err == nil {
				return nil
			}
			if o, _ := job.Classify(err); o != job.OutcomeFail {
				return err
			}
			p := policyOf(j.Topic).normalize()
			return p.decide(j, err)
		})
	}
}

func (p *Policy) decide(j *job.Job, err error) error {
	handler := handlerNameOf(err)
	if p.RetryIf != nil && !p.RetryIf(err) {
		return &job.PermanentError{Err: err, Reason: job.ReasonPermanent, Handler: handler}
	}
	attempt := max(j.Attempt, 1)
	if attempt >= p.MaxAttempts {
		reason := job.ReasonExhausted
		var pe *job.PanicError
		if errors.As(err, &pe) {
			reason = job.ReasonPanic
		}
		return &job.PermanentError{
			Err:     fmt.Errorf("%w after %d attempts: %w", job.ErrRetriesExhausted, attempt, err),
			Reason:  reason,
			Handler: handler,
		}
	}
	return job.RetryIn(p.delay(attempt), err)
}
