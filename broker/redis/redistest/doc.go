// Package redistest starts throwaway Redis servers for tests: yours and conveyor's.
//
// # One Redis per test
//
// Start returns a Server that lives until the test ends. Every call gets a fresh random
// Namespace; use it as the key prefix (for conveyor, the broker's namespace) so that tests
// never see each other's keys, even when they share one Redis through REDIS_URL:
//
//	func TestCheckout(t *testing.T) {
//		srv := redistest.Start(t)
//		rdb := srv.Client(t) // closed when the test ends
//		rdb.Set(t.Context(), srv.Namespace+":greeting", "hello", 0)
//	}
//
// # Where the Redis comes from
//
// Start tries, in order:
//
//  1. a container (testcontainers-go) when a Docker engine answers and the image named by
//     CONVEYOR_REDIS_IMAGE (default "redis:7") is present locally or can be pulled;
//  2. a redis-server binary on PATH, started on a free loopback port in t.TempDir();
//  3. the Redis at REDIS_URL, isolated only by the namespace (it is never flushed; at the
//     end of the test the namespace's own keys are deleted);
//  4. none: the test is skipped with one line starting "redistest: no Redis available".
//     When the environment variable CI is "true", the test fails instead, so a CI run
//     cannot pass by silently skipping every Redis test.
//
// CONVEYOR_REDIS_HARNESS=container|process|url forces one path; the test fails when the
// forced path is unavailable. The path used is logged with t.Logf and kept in Server.Path.
//
// The container path never pulls the Ryuk reaper by surprise: unless
// TESTCONTAINERS_RYUK_DISABLED is exactly "true" (or Ryuk is disabled in
// ~/.testcontainers.properties), it is used only when the Ryuk image is already present.
// Containers are removed by t.Cleanup either way.
//
// # Restarts
//
// A container or process Server can be stopped, killed and started again; Restartable
// (implied by WithAOF) makes Start refuse the REDIS_URL path, which cannot. With WithAOF
// every write is fsynced, so data survives even Kill. After Start the address
// may change (containers get a new mapped port), which is why URL and Addr are methods.
// Clients returned by Server.Client dial the current address, so they keep working across
// restarts; code configured with a URL string must re-read URL.
//
// # Cluster and TLS
//
// StartCluster starts a Redis Cluster of redis-server processes; StartTLS starts a
// redis-server that speaks TLS on one port and plain TCP on another, with a generated CA
// and client certificate. Both need redis-server on PATH and skip (fail in CI) without it.
package redistest
