package redis

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
)

// DeleteIdleConsumer removes consumer from group on topic's stream (XGROUP
// DELCONSUMER) if it holds no pending entry and has been idle for at least
// minIdle, and reports whether it did. The check and the deletion are one
// atomic script in the stream's slot, so a consumer that has just been
// delivered an entry is never deleted, and no pending entry is ever lost
// with a deleted consumer. A consumer that holds entries, or was active
// within minIdle, is kept (false, nil). A stream, group or consumer that
// does not exist is an error wrapping broker.ErrNotFound.
//
// Every consumer that ever read a stream stays in its group until deleted:
// one-shot readers (each with its own name) and workers that are gone
// accumulate. A deleted consumer that reads again is simply created again.
func (b *Broker) DeleteIdleConsumer(ctx context.Context, topic, group, consumer string, minIdle time.Duration) (bool, error) {
	if err := b.check(ctx); err != nil {
		return false, err
	}
	parts, err := b.allKeys(ctx, topic)
	if err != nil {
		return false, err
	}
	// On a partitioned topic the consumer is deleted from each partition
	// where it is idle; it is reported deleted when no partition kept it.
	found, kept := false, false
	for _, k := range parts {
		n, err := deleteConsumerScript.Run(ctx, b.rdb, []string{k.stream},
			group, consumer, strconv.FormatInt(max(minIdle.Milliseconds(), 0), 10)).Int()
		if err != nil {
			return false, b.wrap("delete consumer "+consumer+" of "+topic, err)
		}
		found = found || n >= 0
		kept = kept || n == 0
	}
	switch {
	case !found:
		return false, fmt.Errorf("%w: consumer %q in group %q of %q", broker.ErrNotFound, consumer, group, topic)
	case kept:
		return false, nil
	default:
		return true, nil
	}
}

// deleteConsumerScript deletes a consumer from a group if it holds no
// pending entry and has been idle long enough, atomically with the check.
//
// KEYS[1] stream
// ARGV[1] group
// ARGV[2] consumer
// ARGV[3] minimum idle time, in milliseconds
//
// Returns 1 when the consumer was deleted, 0 when it was kept (it holds
// pending entries, or was active within ARGV[3]), -1 when the stream, the
// group or the consumer does not exist.
var deleteConsumerScript = newScript("delete-consumer", `
local cs = redis.pcall('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
if type(cs) == 'table' and cs.err then return -1 end
for _, c in ipairs(cs) do
  local name, pending, idle
  for j = 1, #c, 2 do
    if c[j] == 'name' then name = c[j + 1] end
    if c[j] == 'pending' then pending = c[j + 1] end
    if c[j] == 'idle' then idle = c[j + 1] end
  end
  if name == ARGV[2] then
    if pending > 0 or idle < tonumber(ARGV[3]) then return 0 end
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
    return 1
  end
end
return -1
`)
