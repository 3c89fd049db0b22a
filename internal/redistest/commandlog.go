package redistest

import (
	"context"
	"fmt"
	"strings"
	"sync"

	goredis "github.com/redis/go-redis/v9"
)

// CommandLog is a go-redis hook (Client.AddHook) that records the commands a client
// sends, pipelined ones included. The zero value is ready.
type CommandLog struct {
	mu   sync.Mutex
	args [][]any
}

func (c *CommandLog) add(cmds ...goredis.Cmder) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cmd := range cmds {
		c.args = append(c.args, cmd.Args())
	}
}

// TakeArgs returns the arguments of the commands recorded since the last Take or
// TakeArgs, the command's name first.
func (c *CommandLog) TakeArgs() [][]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.args
	c.args = nil
	return out
}

// Take returns the names, in lower case, of the commands recorded since the last Take
// or TakeArgs.
func (c *CommandLog) Take() []string {
	args := c.TakeArgs()
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = strings.ToLower(fmt.Sprint(a[0]))
	}
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
