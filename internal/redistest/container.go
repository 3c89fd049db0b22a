package redistest

import "testing"

// Container starts a Redis container for the container path, running redis-server with
// args after the image's own, and returns it once it answers PING at addr; desc says
// what it is, for the log line. An error made by Unavailable makes Start try the next
// path; any other error fails the test. The container must be removed by t.Cleanup.
type Container func(t testing.TB, args []string) (b Backend, addr, desc string, err error)

// Backend is a Redis server a harness path owns and can restart.
type Backend interface {
	// Stop stops the server; kill skips the graceful shutdown.
	Stop(t testing.TB, kill bool)
	// Start starts a stopped server and returns its address once it answers PING.
	Start(t testing.TB) string
}

// Unavailable returns an error saying that a path cannot be used here, so that Start
// tries the next one.
func Unavailable(format string, args ...any) error { return unavailable(format, args...) }

// WaitPingAny waits until one of several candidate addresses of one server answers PING,
// for as long as a server may take to start, and returns it.
func WaitPingAny(addrs []string) (string, error) { return waitPingAny(addrs, startTimeout) }

// ownBackend adapts a Backend to the harness's own backend interface.
type ownBackend struct{ b Backend }

func (o ownBackend) stop(t testing.TB, kill bool) { o.b.Stop(t, kill) }
func (o ownBackend) start(t testing.TB) string    { return o.b.Start(t) }

// unavailableHere explains why a harness without a container path cannot take it.
const unavailableHere = "this harness has none; the container path is in github.com/conveyor-jobs/conveyor/broker/redis/redistest"

func startContainer(t testing.TB, container Container, cfg *config) (*Server, string, error) {
	t.Helper()
	if container == nil {
		return nil, "", unavailable(unavailableHere)
	}
	b, addr, desc, err := container(t, cfg.serverArgs())
	if err != nil {
		return nil, "", err
	}
	return &Server{b: ownBackend{b}, addr: addr}, desc, nil
}
