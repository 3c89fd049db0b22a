package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
	tcredis "github.com/testcontainers/testcontainers-go/modules/redis"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/conveyor-jobs/conveyor/internal/redistest"
)

// ryukImage is the reaper image testcontainers-go v0.45 pulls unless Ryuk is disabled.
const ryukImage = "testcontainers/ryuk:0.14.0"

const (
	probeTimeout = 10 * time.Second // engine answers, image present
	pullTimeout  = 2 * time.Minute  // one pull attempt, no retries
	runTimeout   = 2 * time.Minute  // create, start and wait for one container
)

// probe is the outcome of checking, once per test binary and image, whether containers
// can be used: an engine answers, Ryuk will not be pulled behind our back, and the image
// is present (or was pulled once, without retries).
type probe struct {
	once sync.Once
	err  error
}

var probes sync.Map // image -> *probe

func imageName() string {
	if img := os.Getenv(EnvImage); img != "" {
		return img
	}
	return DefaultImage
}

func probeContainers(image string) error {
	v, _ := probes.LoadOrStore(image, new(probe))
	p := v.(*probe)
	p.once.Do(func() { p.err = doProbe(image) })
	return p.err
}

func doProbe(image string) error {
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return redistest.Unavailable("no Docker engine answers")
	}
	defer cli.Close()
	if !testcontainers.ReadConfig().Config.RyukDisabled {
		if _, err := cli.ImageInspect(ctx, ryukImage); err != nil {
			return redistest.Unavailable("TESTCONTAINERS_RYUK_DISABLED is not \"true\" and %s is not present (it would be pulled)", ryukImage)
		}
	}
	if _, err := cli.ImageInspect(ctx, image); err == nil {
		return nil
	}
	// Not present: try one pull, bounded, without testcontainers' 15-minute retry loop.
	pctx, pcancel := context.WithTimeout(context.Background(), pullTimeout)
	defer pcancel()
	resp, err := cli.ImagePull(pctx, image, client.ImagePullOptions{})
	if err == nil {
		err = resp.Wait(pctx)
		_ = resp.Close()
	}
	if err != nil {
		return redistest.Unavailable("image %s not present and cannot be pulled (%s); make a Redis image present locally (docker images) and name it in %s, or install redis-server",
			image, firstLine(err.Error()), EnvImage)
	}
	return nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

// ctr is a Redis container. Its data lives on the container's own layer (/data), which
// survives Stop and Start of the same container.
type ctr struct {
	c *tcredis.RedisContainer
}

// startContainer serves the container path (see redistest.Container).
func startContainer(t testing.TB, serverArgs []string) (redistest.Backend, string, string, error) {
	t.Helper()
	image := imageName()
	if err := probeContainers(image); err != nil {
		return nil, "", "", err
	}
	// Any command replaces the image's CMD, so repeat what a custom image puts there.
	args := append([]string{"--protected-mode", "no", "--save", "", "--dir", "/data"}, serverArgs...)
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	c, err := tcredis.Run(ctx, image,
		testcontainers.WithCmd(args...),
		testcontainers.WithLogger(tclog.TestLogger(t)),
		// The module also waits for the port from outside, at the host testcontainers
		// infers. Inside a container that shares its Docker engine (/.dockerenv present,
		// bridge network without a gateway) that guess is the default route, where
		// nothing listens, and the wait times out. endpoint below checks the port itself.
		testcontainers.WithWaitStrategyAndDeadline(runTimeout, wait.ForLog("* Ready to accept connections")),
	)
	if c != nil {
		t.Cleanup(func() {
			if err := testcontainers.TerminateContainer(c); err != nil {
				t.Errorf("redistest: remove container: %v", err)
			}
		})
	}
	if err != nil {
		return nil, "", "", fmt.Errorf("container %s: %w", image, err)
	}
	b := &ctr{c: c}
	addr, err := b.endpoint(ctx)
	if err != nil {
		return nil, "", "", err
	}
	return b, addr, fmt.Sprintf("container image %s (testcontainers) at %s", image, addr), nil
}

// endpoint reads the (possibly new) mapped port and waits until PING answers: after a
// restart the log wait matches the old "Ready" line at once. It tries the host
// testcontainers reports (TESTCONTAINERS_HOST_OVERRIDE, if set) and the loopback address.
func (b *ctr) endpoint(ctx context.Context) (string, error) {
	port, err := b.c.MappedPort(ctx, "6379/tcp")
	if err != nil {
		return "", fmt.Errorf("container port: %w", err)
	}
	var addrs []string
	if host, err := b.c.Host(ctx); err == nil {
		addrs = append(addrs, net.JoinHostPort(host, port.Port()))
	}
	if lo := net.JoinHostPort("127.0.0.1", port.Port()); len(addrs) == 0 || addrs[0] != lo {
		addrs = append(addrs, lo)
	}
	addr, err := redistest.WaitPingAny(addrs)
	if err != nil {
		return "", fmt.Errorf("container: %w", err)
	}
	return addr, nil
}

// Stop implements redistest.Backend. Kill gives the server no time to shut down (docker
// stop -t 0).
func (b *ctr) Stop(t testing.TB, kill bool) {
	t.Helper()
	timeout := 10 * time.Second
	if kill {
		timeout = 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	if err := b.c.Stop(ctx, &timeout); err != nil {
		t.Fatalf("redistest: stop container: %v", err)
	}
}

// Start implements redistest.Backend.
func (b *ctr) Start(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	if err := b.c.Start(ctx); err != nil {
		t.Fatalf("redistest: start container: %v", err)
	}
	addr, err := b.endpoint(ctx)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	return addr
}
