// Command conveyor operates conveyor job queues: it checks the connection to
// Redis (ping), publishes and reads jobs (produce, consume), runs a worker
// with the recommended middleware stack (worker), inspects topics (health),
// manages dead letters (dlq), trims streams (trim) and prints the effective
// configuration (config print).
//
// Run "conveyor --help" or "conveyor <command> --help" for usage and
// examples. Exit codes: 0 success, 1 the operation failed, 2 wrong usage or
// configuration.
package main

import (
	"context"
	"os"

	goredis "github.com/redis/go-redis/v9"
)

func main() {
	quietRedis()
	os.Exit(execute(context.Background(), newApp(), os.Args[1:]))
}

// quietRedis stops go-redis from printing its own connection-pool lines on
// stderr: conveyor reports connection errors itself, with advice.
func quietRedis() {
	goredis.SetLogger(voidLogger{})
}

type voidLogger struct{}

func (voidLogger) Printf(context.Context, string, ...any) {}
