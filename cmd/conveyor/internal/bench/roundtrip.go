package bench

import (
	"context"
	"sync/atomic"

	goredis "github.com/redis/go-redis/v9"
)

// roundTrips is a go-redis hook counting round trips (a command, or a
// pipeline of commands, sent and answered) and the commands they carried.
type roundTrips struct {
	trips, cmds atomic.Int64
}

var _ goredis.Hook = (*roundTrips)(nil)

// DialHook leaves dialing alone.
func (r *roundTrips) DialHook(next goredis.DialHook) goredis.DialHook { return next }

// ProcessHook counts one command.
func (r *roundTrips) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		r.trips.Add(1)
		r.cmds.Add(1)
		return next(ctx, cmd)
	}
}

// ProcessPipelineHook counts one round trip for the whole pipeline.
func (r *roundTrips) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		r.trips.Add(1)
		r.cmds.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// snapshot returns the counts so far.
func (r *roundTrips) snapshot() (trips, cmds int64) {
	if r == nil {
		return 0, 0
	}
	return r.trips.Load(), r.cmds.Load()
}
