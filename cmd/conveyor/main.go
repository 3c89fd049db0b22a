// Command conveyor operates conveyor job queues: it checks the connection to
// Redis (ping), publishes and reads jobs (produce, consume), runs a command
// per job inside the recommended middleware stack (worker), inspects topics (health),
// manages dead letters (dlq), trims streams (trim) and prints the effective
// configuration (config print).
//
// Run "conveyor --help" or "conveyor <command> --help" for usage and
// examples. Exit codes: 0 success, 1 the operation failed, 2 wrong usage or
// configuration, 3 produce --unique-key found the key held by another job.
package main

import (
	"context"
	"os"
)

func main() {
	os.Exit(execute(context.Background(), newApp(), os.Args[1:]))
}
