package broker

import "context"

// HealthChecker is implemented by brokers that can tell whether their store is
// reachable and ready to serve (for Redis: PING answers and the consumer group
// exists). Servers use it for readiness probes.
type HealthChecker interface {
	// Check returns nil when the broker can serve, else an error saying
	// what is wrong.
	Check(ctx context.Context) error
}
