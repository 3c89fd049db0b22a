package redis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/job"
)

// MaxHeaders is the most headers a published message may carry: the Lua
// scripts that move a job pass its fields as arguments, and Lua unpacks at
// most a few thousand.
const MaxHeaders = 1000

// Publish enqueues m and returns its job ID; see [Broker.PublishBatch].
// When m's unique key is held, it returns the holder's ID and a
// *broker.DuplicateError.
//
// Concurrent calls are sent together in pipelines unless
// Options.NoPublishCoalescing is set; see coalesce.go.
func (b *Broker) Publish(ctx context.Context, m broker.Message) (string, error) {
	if !b.o.NoPublishCoalescing {
		return b.publishCoalesced(ctx, m)
	}
	return b.publishOne(ctx, m)
}

// publishOne publishes m alone: a batch of one.
func (b *Broker) publishOne(ctx context.Context, m broker.Message) (string, error) {
	ids, err := b.PublishBatch(ctx, []broker.Message{m})
	var be *broker.BatchError
	if errors.As(err, &be) && len(be.Duplicates) == 1 {
		return ids[0], be.Err
	}
	if err != nil {
		return "", err
	}
	return ids[0], nil
}

// PublishBatch enqueues ms in one pipelined round trip (one per Cluster
// node) and returns their job IDs in order. Every message is validated before
// anything is sent. On a Redis error it returns a *broker.BatchError and the
// IDs of the messages Redis confirmed, with "" for the others (see
// [broker.BatchError]: a message whose reply was lost may still have been
// enqueued).
//
// A message due now is added to its topic's stream with the minimal entry
// of the wire format: XADD <stream> * payload <p> [h.<name> <v>]…, plus id
// when m.ID is set, max_attempts when m.MaxAttempts is and timeout_ms when
// m.Timeout is. Its job ID is m.ID, or else the receipt of the stream
// entry XADD adds: its entry ID, followed on a partitioned topic by
// "@<n>/<i>" (entry IDs are unique within one stream only); its attempt
// is 1 and its enqueue time is the entry ID's time (Redis's clock), both
// implied by the entry. A message due later
// (Delay, ProcessAt) is added to the topic's delayed set with an explicit
// id (m.ID, or a generated UUIDv7), attempt and enqueued_at (Options.Now).
//
// A message with a unique key is added by a script that first checks and
// then takes the key's claim, atomically with the XADD or ZADD (see
// unique.go), and carries unique_key (and unique_for_ms) on the wire. When
// the key is held, nothing is added: the message's ID is the holder's and
// its index is in the Duplicates of the *broker.BatchError returned.
func (b *Broker) PublishBatch(ctx context.Context, ms []broker.Message) ([]string, error) {
	return b.publishBatch(ctx, ms, nil)
}

// publishBatch is PublishBatch; when errs is not nil (len(ms) of them), a
// message's own error (its command's, or its *broker.DuplicateError) is
// also put at its index in errs.
func (b *Broker) publishBatch(ctx context.Context, ms []broker.Message, errs []error) ([]string, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	if len(ms) == 0 {
		return []string{}, nil
	}
	now := b.o.Now()
	ids := make([]string, len(ms))
	for i := range ms {
		if err := validateMessage(i, &ms[i]); err != nil {
			return nil, err
		}
		ids[i] = ms[i].ID
		if ids[i] == "" && ms[i].Due(now).After(now) {
			// A delayed job needs its ID before it has a stream entry.
			u, err := uuid.NewV7()
			if err != nil {
				return nil, fmt.Errorf("conveyor/redis: generate job ID: %w", err)
			}
			ids[i] = u.String()
		}
	}
	// The partition of each message (the topic's keys when it has one).
	pk := make([]keys, len(ms))
	for i := range ms {
		var err error
		if pk[i], err = b.pubKeys(ctx, &ms[i]); err != nil {
			return nil, err
		}
	}
	if len(ms) == 1 && ms[0].UniqueKey != "" && b.registered(pk[0].base) {
		return b.publishUnique(ctx, &ms[0], pk[0], ids[0], now)
	}
	if len(ms) == 1 && ms[0].UniqueKey == "" {
		if k := pk[0]; b.registered(k.base) {
			// The common case needs no pipeline: one command.
			cmd := b.add(ctx, b.rdb, &ms[0], ids[0], now, k.stream, k.delayed)
			if err := cmd.Err(); err != nil {
				return nil, b.wrap("publish", err)
			}
			if ids[0] == "" {
				ids[0] = k.receipt(cmd.(*goredis.StringCmd).Val())
			}
			b.noteDelayed(ms, pk, nil, now)
			return ids, nil
		}
	}
	pipe := b.rdb.Pipeline()
	cmds := make([]goredis.Cmder, len(ms))
	var newTopics []any
	var k keys
	var stream any // k.stream, boxed once per run of one topic
	for i := range ms {
		if i == 0 || pk[i].stream != k.stream {
			k = pk[i]
			stream = k.stream
			if !b.registered(k.base) && !slices.Contains(newTopics, any(k.base)) {
				newTopics = append(newTopics, k.base)
			}
		}
		if ms[i].UniqueKey != "" {
			c := b.publishUniqueCall(&ms[i], pk[i], ids[i], now)
			if len(ms) > 1 {
				// EVAL, not EVALSHA: a NOSCRIPT run again after
				// the batch would break its order.
				cmds[i] = c.s.Eval(ctx, pipe, c.keys, c.args...)
			} else {
				cmds[i] = c.s.EvalSha(ctx, pipe, c.keys, c.args...)
			}
			continue
		}
		cmds[i] = b.add(ctx, pipe, &ms[i], ids[i], now, stream, k.delayed)
	}
	var registry *goredis.IntCmd
	if len(newTopics) > 0 {
		registry = pipe.SAdd(ctx, b.registryKey(), newTopics...)
	}
	_, _ = pipe.Exec(ctx) // every command's error is read below
	var batchErr *broker.BatchError
	failed := func(i int, err error) {
		if batchErr == nil {
			batchErr = &broker.BatchError{}
		}
		if batchErr.Err == nil {
			batchErr.Err = b.wrap("publish", err)
		}
		batchErr.Failed = append(batchErr.Failed, i)
		ids[i] = ""
		if errs != nil {
			errs[i] = b.wrap("publish", err)
		}
	}
	var dupErr error
	for i, c := range cmds {
		if ms[i].UniqueKey == "" {
			if err := c.Err(); err != nil {
				failed(i, err)
			} else if ids[i] == "" {
				ids[i] = pk[i].receipt(c.(*goredis.StringCmd).Val())
			}
			continue
		}
		if isNoScript(c.Err()) { // a batch of one
			uc := b.publishUniqueCall(&ms[i], pk[i], ids[i], now)
			c = uc.s.Run(ctx, b.rdb, uc.keys, uc.args...)
			cmds[i] = c
		}
		id, added, err := publishUniqueReply(c)
		switch {
		case err != nil:
			failed(i, err)
		case !added:
			if batchErr == nil {
				batchErr = &broker.BatchError{}
			}
			if dupErr == nil {
				dupErr = &broker.DuplicateError{Topic: ms[i].Topic, Key: ms[i].UniqueKey, ID: id}
			}
			batchErr.Duplicates = append(batchErr.Duplicates, i)
			ids[i] = id
			if errs != nil {
				errs[i] = &broker.DuplicateError{Topic: ms[i].Topic, Key: ms[i].UniqueKey, ID: id}
			}
		default:
			ids[i] = id
		}
	}
	if batchErr != nil && batchErr.Err == nil {
		batchErr.Err = dupErr
	}
	b.noteDelayed(ms, pk, cmds, now)
	if batchErr != nil && len(batchErr.Failed) > 0 {
		return ids, batchErr
	}
	if registry != nil && registry.Err() != nil {
		// Every job was enqueued (or refused as a duplicate); only the
		// topic registry was not written. The listing finds the topics
		// by scanning anyway.
		b.log.Warn("conveyor/redis: published, but could not add the topics to the registry", "topics", newTopics, "err", registry.Err())
	} else {
		for _, t := range newTopics {
			b.topics.Store(t, struct{}{})
		}
	}
	if batchErr != nil {
		return ids, batchErr
	}
	return ids, nil
}

// validateMessage checks m, the i-th message of a batch, before anything
// is sent.
func validateMessage(i int, m *broker.Message) error {
	if m.Topic == "" {
		return fmt.Errorf("%w: message %d has an empty topic", broker.ErrInvalidMessage, i)
	}
	if err := ValidateTopic(m.Topic); err != nil {
		return fmt.Errorf("message %d: %w", i, err)
	}
	if err := m.CheckLimits(); err != nil {
		return fmt.Errorf("message %d: %w", i, err)
	}
	if len(m.Headers) > MaxHeaders {
		return fmt.Errorf("%w: message %d has %d headers, more than %d", broker.ErrInvalidMessage, i, len(m.Headers), MaxHeaders)
	}
	return nil
}

// noteDelayed records the due times of the messages of ms added to a
// delayed set (those whose command in cmds succeeded; cmds nil: all; pk:
// their partitions), so that this broker's Fetch promotes them when they
// are due.
func (b *Broker) noteDelayed(ms []broker.Message, pk []keys, cmds []goredis.Cmder, now time.Time) {
	for i := range ms {
		if due := ms[i].Due(now); due.After(now) && (cmds == nil || cmds[i].Err() == nil) {
			b.noteDue(pk[i].id, due.UnixMilli())
		}
	}
}

// isNoScript reports a NOSCRIPT error: EVALSHA of a script not loaded.
func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}

// registered reports whether base is known to be in the topic registry.
func (b *Broker) registered(base string) bool {
	_, ok := b.topics.Load(base)
	return ok
}

// adder queues (a pipeline) or runs (a client) a command.
type adder interface {
	Process(ctx context.Context, cmd goredis.Cmder) error
}

// add queues (or runs) the command storing m: XADD to its stream (given,
// boxed, as stream), or ZADD to its delayed set when it is due later. For an
// XADD, the returned command is a *goredis.StringCmd whose value is the
// entry ID.
func (b *Broker) add(ctx context.Context, c adder, m *broker.Message, id string, now time.Time, stream any, delayed string) goredis.Cmder {
	if due := m.Due(now); due.After(now) {
		member := encodeMember(encodeFields(b.delayedJob(m, id, now), 1, nil))
		cmd := goredis.NewIntCmd(ctx, "zadd", delayed, due.UnixMilli(), member)
		_ = c.Process(ctx, cmd)
		return cmd
	}
	cmd := goredis.NewStringCmd(ctx, xaddArgs(m, id, stream)...)
	_ = c.Process(ctx, cmd)
	return cmd
}

// delayedJob returns the job of m, published at now with ID id, as its
// delayed-set member records it.
func (b *Broker) delayedJob(m *broker.Message, id string, now time.Time) *job.Job {
	return &job.Job{ID: id, Payload: m.Payload, Headers: m.Headers, EnqueuedAt: now, MaxAttempts: m.MaxAttempts, Timeout: m.Timeout,
		UniqueKey: m.UniqueKey, UniqueFor: m.UniqueFor, Key: m.Key}
}

// xaddArgs returns the XADD command of a new job due now, built directly as
// the command's arguments: the payload is written as bytes (not copied), id
// only when the caller gave one, headers sorted by name.
func xaddArgs(m *broker.Message, id string, stream any) []any {
	n := 9
	if m.Key != "" {
		n += 2
	}
	if id != "" {
		n += 2
	}
	n += 2 * len(m.Headers)
	args := make([]any, 0, n)
	args = append(args, "xadd", stream, "*", fieldPayload, payloadArg(m.Payload))
	if id != "" {
		args = append(args, fieldID, id)
	}
	args = appendOptional(args, func(s string) any { return s }, m.MaxAttempts, m.Timeout, m.UniqueKey, m.UniqueFor, m.Key, m.Headers)
	return args
}

// payloadArg returns p for go-redis to write as a bulk string; a nil
// payload is written as the empty string.
func payloadArg(p []byte) any {
	if p == nil {
		return ""
	}
	return p
}
