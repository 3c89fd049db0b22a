package redis

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/job"
)

// Ack settles deliveries as done: XACK + XDEL of every entry, grouped by
// stream, pipelined in one round trip (one per Cluster node). A unique job
// is acked by a script in the same pipeline that also releases its claim,
// or keeps it until UniqueFor after the job's EnqueuedAt (see unique.go).
// A delivery with a result (Delivery.Result) is acked by a script in the
// same pipeline that also stores the result for Options.ResultRetention
// (see result.go); acks of deliveries without one cost what they cost
// without results.
func (b *Broker) Ack(ctx context.Context, ds ...*broker.Delivery) error {
	if err := b.check(ctx); err != nil {
		return err
	}
	// Batch members' ends are recorded before they are settled (batch.go).
	due, err := b.recordEnds(ctx, ds, broker.MemberSucceeded, "")
	if err != nil {
		return err
	}
	defer b.finishBatches(ctx, due)
	var unique []scriptCall // acks by script: unique jobs, and jobs with a result
	for _, d := range ds {
		switch {
		case d == nil:
		case d.Result != nil:
			unique = append(unique, b.ackResultCall(d))
		case d.Job.UniqueKey != "":
			unique = append(unique, b.ackUniqueCall(d))
		}
	}
	plain := b.byStream(ds, func(d *broker.Delivery) bool { return d.Result == nil && d.Job.UniqueKey == "" })
	if len(plain) == 0 && len(unique) == 0 {
		return nil
	}
	pipe := b.rdb.Pipeline()
	for _, g := range plain {
		ack := goredis.NewIntCmd(ctx, append(append(make([]any, 0, 3+len(g.ids)), "xack", g.k.stream, b.o.Group), g.ids...)...)
		del := goredis.NewIntCmd(ctx, append(append(make([]any, 0, 2+len(g.ids)), "xdel", g.k.stream), g.ids...)...)
		ack.SetFirstKeyPos(1)
		del.SetFirstKeyPos(1)
		_ = pipe.Process(ctx, ack)
		_ = pipe.Process(ctx, del)
	}
	if len(unique) == 0 {
		_, err := pipe.Exec(ctx)
		return b.wrap("ack", err)
	}
	cmds, err := b.execScripts(ctx, pipe, unique)
	if err != nil {
		return b.wrap("ack", err)
	}
	for _, c := range cmds {
		if err := c.Err(); err != nil {
			return b.wrap("ack", err)
		}
	}
	return nil
}

// Retry re-enqueues d's job as attempt d.Job.Attempt+1 with f recorded, now
// (delay <= 0) or after delay, in one atomic script. If the entry is no longer
// pending (settled before, or recovered and settled by another consumer after
// the lease expired), nothing is written and the error wraps
// broker.ErrNotFound ([Broker.StaleSettles] counts these). A job with more
// fields than a settle can re-enqueue (only a raw producer can add one) is
// not re-enqueued and stays pending; the error wraps broker.ErrInvalidMessage.
// A failed settle never removes the entry.
func (b *Broker) Retry(ctx context.Context, d *broker.Delivery, delay time.Duration, f job.Failure) error {
	if err := b.check(ctx); err != nil {
		return err
	}
	if f.Origin == "" {
		f.Origin = d.Job.Topic
	}
	if f.At.IsZero() {
		f.At = b.o.Now()
	}
	return b.requeue(ctx, "retry", d, delay, encodeFields(&d.Job, broker.AddAttempts(d.Job.Attempt, 1), &f))
}

// Snooze re-enqueues d's job, keeping its attempt and last failure, now
// (delay <= 0) or after delay, in one atomic script.
func (b *Broker) Snooze(ctx context.Context, d *broker.Delivery, delay time.Duration) error {
	if err := b.check(ctx); err != nil {
		return err
	}
	return b.requeue(ctx, "snooze", d, delay, encodeFields(&d.Job, d.Job.Attempt, d.Job.Failure))
}

var _ broker.SnoozeRecorder = (*Broker)(nil)

// SnoozeBecause is [Broker.Snooze] that also records cause and the time of
// the snooze with the job, in the stream entry fields snooze_cause and
// snoozed_at (unix ms), until the job's next outcome: [Broker.DelayedJobs]
// reports them while the job waits. It implements broker.SnoozeRecorder.
func (b *Broker) SnoozeBecause(ctx context.Context, d *broker.Delivery, delay time.Duration, cause string) error {
	if err := b.check(ctx); err != nil {
		return err
	}
	fields := encodeFields(&d.Job, d.Job.Attempt, d.Job.Failure)
	fields = append(fields, fieldSnoozeCause, cause, fieldSnoozedAt, strconv.FormatInt(b.o.Now().UnixMilli(), 10))
	return b.requeue(ctx, "snooze", d, delay, fields)
}

// maxSettleValues is the most field and value strings a settle passes to
// Lua as they are. Lua's unpack (in settleScript and in the promotion of
// delayed members) fails at about 7,900 values; a job published through
// Publish (at most MaxHeaders headers) stays below this bound. Only an entry
// added by a raw producer can exceed it.
const maxSettleValues = 2*MaxHeaders + 32

// packedFields is the header under which a dead letter with more than
// maxSettleValues values keeps every field beyond the job's own (payload,
// id, attempt, enqueued_at and the failure), netstring-encoded like a
// delayed-set member ("<len>:<bytes>," for each field name, with its "h."
// prefix, and value). The dead letter stays a valid job: its payload, ID,
// attempts and failure are readable as usual and nothing is dropped.
const packedFields = "conveyor-packed-fields"

// packFields returns fields with every pair that is not one of the job's
// own fields moved into the single header packedFields.
func packFields(fields []string) []string {
	own := make([]string, 0, 20)
	var rest []string
	for i := 0; i+1 < len(fields); i += 2 {
		switch fields[i] {
		case fieldPayload, fieldID, fieldAttempt, fieldEnqueuedAt, fieldMaxAttempts, fieldTimeout,
			fieldUniqueKey, fieldUniqueFor, fieldKey, fieldError, fieldReason, fieldHandler, fieldOrigin, fieldFailedAt, fieldStack:
			own = append(own, fields[i], fields[i+1])
		default:
			rest = append(rest, fields[i], fields[i+1])
		}
	}
	return append(own, headerPrefix+packedFields, encodeMember(rest))
}

// requeue re-enqueues d's job with fields. A job with more values than
// maxSettleValues is not re-enqueued (Lua could not unpack it, now or when
// its delayed member is promoted): the error wraps broker.ErrInvalidMessage
// and the entry stays pending, so it is redelivered after its lease. Each
// such delivery ends with no outcome, so the job ends dead-lettered (with
// its extra fields packed, see packedFields) after MaxDeliveries of them:
// it is never lost and never loops forever.
func (b *Broker) requeue(ctx context.Context, op string, d *broker.Delivery, delay time.Duration, fields []string) error {
	if len(fields) > maxSettleValues {
		return fmt.Errorf("%w: %s: job %s of %q has %d stream fields (%d headers), more than a settle can re-enqueue (%d values); nothing was written: the entry stays pending, is redelivered after its lease and is dead-lettered after MaxDeliveries deliveries",
			broker.ErrInvalidMessage, op, d.Job.ID, d.Job.Topic, len(fields)/2, len(d.Job.Headers), maxSettleValues)
	}
	k, _ := b.dkeys(d)
	if delay > 0 {
		due := b.o.Now().Add(delay).UnixMilli()
		if err := b.settle(ctx, op, d, k.stream, k.delayed, "delayed", strconv.FormatInt(due, 10), encodeMember(fields), nil); err != nil {
			return err
		}
		b.noteDue(k.id, due)
		return nil
	}
	return b.settle(ctx, op, d, k.stream, k.stream, "stream", "", "", fields)
}

// DeadLetter moves d's job to its dead-letter topic with f recorded, in one
// atomic script. f.Origin defaults to the job's topic and f.At to now.
func (b *Broker) DeadLetter(ctx context.Context, d *broker.Delivery, f job.Failure) error {
	if err := b.check(ctx); err != nil {
		return err
	}
	if f.Origin == "" {
		f.Origin = d.Job.Topic
	}
	if f.At.IsZero() {
		f.At = b.o.Now()
	}
	return b.deadLetterFields(ctx, d, encodeFields(&d.Job, d.Job.Attempt, &f))
}

// deadLetterFields moves d's entry to the dead-letter stream as fields. A
// job with more values than Lua can unpack has its extra fields packed into
// one header (see packedFields) so that a dead letter can always be stored.
func (b *Broker) deadLetterFields(ctx context.Context, d *broker.Delivery, fields []string) error {
	// A batch member's end is recorded before it is settled (batch.go).
	due, err := b.recordDeadLetter(ctx, d, fields)
	if err != nil {
		return err
	}
	defer b.finishBatches(ctx, due)
	if len(fields) > maxSettleValues {
		fields = packFields(fields)
		b.log.Warn("conveyor/redis: dead letter has too many fields; extra fields packed into one header",
			"topic", d.Job.Topic, "job_id", d.Job.ID, "header", packedFields)
	}
	k, _ := b.dkeys(d)
	return b.settle(ctx, "dead-letter", d, k.stream, k.dlq, "dlq", strconv.FormatInt(b.o.DeadLetterMaxLen, 10), "", fields)
}

// settleMarkerTTL is how long the marker of a settle lives (see
// settleScript): longer than go-redis takes to run a command again after a
// lost reply (MaxRetries attempts, each bounded by the read timeout and the
// retry backoff: about 15s with the defaults).
const settleMarkerTTL = time.Minute

// settleCall returns the settleScript call that moves d's entry from src to
// target; see the script's header for the arguments. Each call gets its own
// token.
func (b *Broker) settleCall(d *broker.Delivery, src, target, mode, arg4, arg5 string, fields []string) scriptCall {
	k, id := b.dkeys(d)
	args := make([]any, 0, 8+len(fields))
	args = append(args, b.o.Group, id, mode, arg4, arg5, b.o.Consumer,
		strconv.FormatUint(rand.Uint64(), 36), settleMarkerTTL.Milliseconds())
	for _, f := range fields {
		args = append(args, f)
	}
	ks := []string{src, target, src + ":settled:" + id}
	if d.Job.UniqueKey != "" {
		// The job's claim: released by a dead-lettering, kept (renewed)
		// by a retry or snooze.
		ks = append(ks, k.unique+d.Job.UniqueKey)
		args = append(args, d.Job.ID, b.claimTTL(mode, arg4))
	}
	return scriptCall{settleScript, ks, args}
}

// settle moves d's entry from src to target with settleScript.
func (b *Broker) settle(ctx context.Context, op string, d *broker.Delivery, src, target, mode, arg4, arg5 string, fields []string) error {
	return b.runSettle(ctx, op, d, b.settleCall(d, src, target, mode, arg4, arg5, fields))
}

// runSettle runs c, a settleCall for d, and reads its reply.
func (b *Broker) runSettle(ctx context.Context, op string, d *broker.Delivery, c scriptCall) error {
	res, err := c.s.Run(ctx, b.rdb, c.keys, c.args...).Int64Slice()
	if err != nil {
		return b.wrap(op, err)
	}
	if len(res) < 2 {
		return b.wrap(op, errors.New("unexpected script reply"))
	}
	if res[0] == 3 {
		// The client ran the script again after losing the reply of a
		// run that settled the entry.
		b.log.Debug("conveyor/redis: settle found done by its own earlier run (the reply was lost and the call sent again)",
			"op", op, "topic", d.Job.Topic, "job_id", d.Job.ID, "entry", d.Receipt)
		return nil
	}
	if res[0] != 1 {
		why := "is no longer pending (settled before, or recovered and settled by another consumer after the lease expired)"
		if res[0] == 2 {
			why = "is held by another consumer, which recovered it after this consumer's lease expired and decides its outcome"
		}
		b.stale.Add(1)
		b.log.Debug("conveyor/redis: entry not settled, nothing re-enqueued",
			"op", op, "topic", d.Job.Topic, "job_id", d.Job.ID, "entry", d.Receipt, "why", why)
		return fmt.Errorf("%w: %s: entry %s of %q %s; nothing was written",
			broker.ErrNotFound, op, d.Receipt, d.Job.Topic, why)
	}
	if res[1] == 1 {
		b.overflows.Add(1)
		b.log.Error("conveyor/redis: dead-letter stream at or above its cap; dead letter stored anyway",
			"topic", d.Job.Topic, "job_id", d.Job.ID, "stream", c.keys[1], "cap", b.o.DeadLetterMaxLen)
	}
	return nil
}

// Extend renews the lease of the deliveries this consumer still owns: one
// script per stream (XCLAIM … JUSTID only for entries whose pending owner is
// this consumer), pipelined in one round trip. Deliveries another consumer
// has recovered are not taken back: if there are any, the others are renewed
// and the error wraps broker.ErrNotFound. An entry deleted from the stream
// while leased is not renewed either: it is counted in [Broker.Lost] and
// logged at error level.
func (b *Broker) Extend(ctx context.Context, ds ...*broker.Delivery) error {
	if err := b.check(ctx); err != nil {
		return err
	}
	groups := b.byStream(ds, nil)
	if len(groups) == 0 {
		return nil
	}
	renewed, err := b.extendStreams(ctx, groups)
	if err != nil {
		return b.wrap("extend", err)
	}
	lost := 0
	for i, g := range groups {
		lost += len(g.ids) - len(renewed[i])
	}
	if lost > 0 {
		return fmt.Errorf("%w: %d of %d deliveries are no longer leased to consumer %s (settled, recovered by another consumer, or deleted from the stream); the others were renewed",
			broker.ErrNotFound, lost, len(ds), b.o.Consumer)
	}
	return nil
}

// streamIDs is the deliveries of one stream: its keys, and their entry IDs,
// each boxed once for the commands that name them.
type streamIDs struct {
	k   keys
	ids []any
}

// byStream groups the deliveries of ds that keep accepts (every one when
// keep is nil; never a nil one) by stream, in the order of each stream's
// first delivery.
func (b *Broker) byStream(ds []*broker.Delivery, keep func(*broker.Delivery) bool) []streamIDs {
	group := make([]int, len(ds))
	boxed := make([]any, len(ds))
	var out []streamIDs
	var sizes []int
	index := map[string]int{}
	for i, d := range ds {
		group[i] = -1
		if d == nil || keep != nil && !keep(d) {
			continue
		}
		k, id := b.dkeys(d)
		g, ok := index[k.stream]
		if !ok {
			g = len(out)
			index[k.stream] = g
			out = append(out, streamIDs{k: k})
			sizes = append(sizes, 0)
		}
		group[i], boxed[i] = g, id
		sizes[g]++
	}
	for g := range out {
		out[g].ids = make([]any, 0, sizes[g])
	}
	for i, g := range group {
		if g >= 0 {
			out[g].ids = append(out[g].ids, boxed[i])
		}
	}
	return out
}

// extendStreams renews this consumer's leases of the entries of groups
// (extendScript, one call per stream, in one round trip) and returns, per
// group, the IDs it still held.
func (b *Broker) extendStreams(ctx context.Context, groups []streamIDs) ([][]string, error) {
	calls := make([]scriptCall, len(groups))
	for i, g := range groups {
		calls[i] = scriptCall{extendScript, []string{g.k.stream}, append([]any{b.o.Group, b.o.Consumer}, g.ids...)}
	}
	cmds, err := b.runScripts(ctx, calls)
	if err != nil {
		return nil, err
	}
	out := make([][]string, len(cmds))
	for i, c := range cmds {
		if out[i], err = b.extendReply(c, groups[i].k.stream); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// extendReply reads extendScript's reply for stream and returns the renewed
// IDs. The IDs deleted from the stream while pending are added to Lost and
// logged at error level.
func (b *Broker) extendReply(c *goredis.Cmd, stream string) ([]string, error) {
	res, err := c.Slice()
	if err != nil {
		return nil, err
	}
	if len(res) != 2 {
		return nil, fmt.Errorf("unexpected reply of %d elements", len(res))
	}
	var renewed, deleted []string
	for i, dst := range []*[]string{&renewed, &deleted} {
		ids, _ := res[i].([]any)
		for _, id := range ids {
			if s, ok := id.(string); ok {
				*dst = append(*dst, s)
			}
		}
	}
	if len(deleted) > 0 {
		b.lost.Add(int64(len(deleted)))
		b.log.Error("conveyor/redis: leased entries were deleted from the stream before being settled: jobs lost",
			"stream", stream, "count", len(deleted), "entries", deleted)
	}
	return renewed, nil
}

// scriptCall is one script run in a pipeline.
type scriptCall struct {
	s    script
	keys []string
	args []any
}

// runScripts runs calls in one pipeline with EVALSHA, and runs again (with
// EVAL fallback) those that hit NOSCRIPT. The returned error is the first
// transport error; per-call errors are in the commands.
func (b *Broker) runScripts(ctx context.Context, calls []scriptCall) ([]*goredis.Cmd, error) {
	return b.execScripts(ctx, b.rdb.Pipeline(), calls)
}

// execScripts is runScripts on pipe, which may hold other commands already:
// the first error of those is returned too.
func (b *Broker) execScripts(ctx context.Context, pipe goredis.Pipeliner, calls []scriptCall) ([]*goredis.Cmd, error) {
	cmds := make([]*goredis.Cmd, len(calls))
	for i, c := range calls {
		cmds[i] = c.s.EvalSha(ctx, pipe, c.keys, c.args...)
	}
	others := pipe.Len() - len(calls)
	all, _ := pipe.Exec(ctx)
	for _, c := range all[:min(others, len(all))] {
		if err := c.Err(); err != nil {
			return nil, err
		}
	}
	for i, c := range calls {
		err := cmds[i].Err()
		if err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") {
			cmds[i] = c.s.Run(ctx, b.rdb, c.keys, c.args...)
			err = cmds[i].Err()
		}
		if err != nil && !errors.Is(err, goredis.Nil) && !isRedisError(err) {
			return nil, err
		}
	}
	return cmds, nil
}

// isRedisError reports an error reply from Redis (as opposed to a transport
// error).
func isRedisError(err error) bool {
	var re goredis.Error
	return errors.As(err, &re)
}
