package redistest

import (
	"testing"

	"github.com/conveyor-jobs/conveyor/internal/redistest"
)

// Paths Start can take, as reported by Server.Path and accepted by CONVEYOR_REDIS_HARNESS.
const (
	PathContainer = redistest.PathContainer // testcontainers-go, image from CONVEYOR_REDIS_IMAGE
	PathProcess   = redistest.PathProcess   // redis-server on PATH, started on a free loopback port
	PathURL       = redistest.PathURL       // the Redis at REDIS_URL, isolated by namespace only
)

// Environment variables read by the harness.
const (
	EnvImage   = redistest.EnvImage   // container image; default DefaultImage
	EnvHarness = redistest.EnvHarness // force one path: container, process or url
	EnvURL     = redistest.EnvURL     // an existing Redis, used when nothing else is
)

// DefaultImage is the container image used when CONVEYOR_REDIS_IMAGE is unset.
const DefaultImage = redistest.DefaultImage

// NoRedisMarker starts the one line with which a test is skipped (or, when CI is "true",
// failed) because no Redis could be found. CI scripts may grep for it.
const NoRedisMarker = redistest.NoRedisMarker

// Option configures Start. Options are built only by this package's functions.
type Option = redistest.Option

// Server is a Redis for one test. It is stopped and removed when the test ends.
// Its methods are safe for concurrent use.
type Server = redistest.Server

// Cluster is a Redis Cluster of redis-server processes (masters only, no replicas) for
// one test, with every slot assigned. It is torn down when the test ends.
type Cluster = redistest.Cluster

// TLSServer is a redis-server speaking TLS on one port and plain TCP on another, with a
// CA, server certificate and client certificate generated for the test. It is torn down
// when the test ends.
type TLSServer = redistest.TLSServer

// WithAOF turns on the append-only file with appendfsync always, so that every
// acknowledged write survives Stop, Kill and Start. It implies Restartable.
func WithAOF() Option { return redistest.WithAOF() }

// Restartable asks for a server that can be stopped and started again: a container or a
// process, never REDIS_URL.
func Restartable() Option { return redistest.Restartable() }

// WithArgs appends redis-server arguments, e.g. WithArgs("--maxmemory", "10mb"). They
// come after the harness's own and so override them. File paths are read by the server:
// inside the container on the container path. Not available with REDIS_URL.
func WithArgs(args ...string) Option { return redistest.WithArgs(args...) }

// WithPassword makes the server require a password; URL and Client carry it.
func WithPassword(password string) Option { return redistest.WithPassword(password) }

// Start returns a Redis for the test, found as the package documentation describes, and
// logs which one. It skips the test (fails it when CI is "true") when there is none, and
// fails it when CONVEYOR_REDIS_HARNESS names a path that is not available.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	return redistest.StartWith(t, startContainer, opts...)
}

// StartCluster starts a Redis Cluster of masters redis-server processes (3 if masters < 1)
// on free loopback ports, assigns the slots evenly (CLUSTER ADDSLOTSRANGE), joins the
// nodes (CLUSTER MEET) and returns once every node reports cluster_state:ok and knows
// every other node. It needs redis-server on PATH and skips the test (fails it when CI is
// "true") without it.
func StartCluster(t testing.TB, masters int) *Cluster {
	t.Helper()
	return redistest.StartCluster(t, masters)
}

// StartTLS generates a CA, a server certificate and a client certificate in t.TempDir()
// and starts redis-server with TLS on a free port and plain TCP on another. It needs
// redis-server built with TLS (Debian's is) on PATH and skips the test (fails it when CI
// is "true") without it.
func StartTLS(t testing.TB) *TLSServer {
	t.Helper()
	return redistest.StartTLS(t)
}
