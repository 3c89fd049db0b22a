package redistest

import (
	"context"
	"strings"
	"sync"

	goredis "github.com/redis/go-redis/v9"
)

// CommandLog is a go-redis hook (Client.AddHook) that records the names of
// the commands a client sends, in lower case, pipelined ones included. The
// zero value is ready.
type CommandLog struct {
	mu    sync.Mutex
	names []string
}

func (c *CommandLog) add(cmds ...goredis.Cmder) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cmd := range cmds {
		c.names = append(c.names, strings.ToLower(cmd.Name()))
	}
}

// Take returns the names recorded since the last Take.
func (c *CommandLog) Take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.names
	c.names = nil
	return out
}

// DialHook is part of goredis.Hook.
func (c *CommandLog) DialHook(next goredis.DialHook) goredis.DialHook { return next }

// ProcessHook is part of goredis.Hook.
func (c *CommandLog) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		c.add(cmd)
		return next(ctx, cmd)
	}
}

// ProcessPipelineHook is part of goredis.Hook.
func (c *CommandLog) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		c.add(cmds...)
		return next(ctx, cmds)
	}
}
