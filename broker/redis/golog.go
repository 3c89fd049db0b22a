package redis

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	goredis "github.com/redis/go-redis/v9"
)

// goredisLogger receives go-redis's own log lines ("connection pool: failed
// to dial …") and writes them, at debug level, to the loggers of the open
// brokers that [Open] created, or to slog.Default() when none is open. Debug,
// because every failure they describe also reaches the caller as an error of
// the broker call that met it (and the server logs fetch outages itself):
// they are detail for a diagnosis, not news.
//
// go-redis has one logger for the whole process (redis.SetLogger), and its
// lines do not say which client wrote them: each line goes to every distinct
// logger of those brokers. Open installs it the first time it is called,
// replacing whatever logger go-redis had; an application that wants go-redis's
// lines elsewhere calls redis.SetLogger after Open.
type goredisLogger struct {
	mu      sync.Mutex
	brokers []*Broker // open brokers created by Open, oldest first
}

// goredisLog is the one forwarder; go-redis's logger is process-wide, so
// this is too. It is installed by installGoredisLog.
var (
	goredisLog        = &goredisLogger{}
	installGoredisLog = sync.OnceFunc(func() { goredis.SetLogger(goredisLog) })
)

// add starts sending go-redis's lines to b's logger.
func (g *goredisLogger) add(b *Broker) {
	installGoredisLog()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.brokers = append(g.brokers, b)
}

// remove stops sending go-redis's lines to b's logger.
func (g *goredisLogger) remove(b *Broker) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i, x := range g.brokers {
		if x == b {
			g.brokers = append(g.brokers[:i], g.brokers[i+1:]...)
			return
		}
	}
}

// Printf writes one go-redis line.
func (g *goredisLogger) Printf(ctx context.Context, format string, v ...any) {
	if ctx == nil {
		ctx = context.Background()
	}
	msg := "conveyor/redis: go-redis: " + strings.TrimSpace(strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: "))
	g.mu.Lock()
	var loggers []*slog.Logger
	for _, b := range g.brokers {
		if !containsLogger(loggers, b.o.Logger) {
			loggers = append(loggers, b.o.Logger)
		}
	}
	g.mu.Unlock()
	if len(loggers) == 0 {
		loggers = []*slog.Logger{slog.Default()}
	}
	for _, l := range loggers {
		l.Log(ctx, slog.LevelDebug, msg, "broker", "redis")
	}
}

func containsLogger(ls []*slog.Logger, l *slog.Logger) bool {
	for _, x := range ls {
		if x == l {
			return true
		}
	}
	return false
}
