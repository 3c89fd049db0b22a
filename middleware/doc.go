// Package middleware provides the job middleware conveyor ships: recovery,
// timeouts, logging, retry with backoff, dead-letter routing, rate limiting,
// circuit breaking and metrics.
package middleware
