package reliability

import (
	"context"
	"fmt"
	"log"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/redis"
	"github.com/conveyor-jobs/conveyor/broker/redis/redistest"
	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/server"
)

// TestFaultSecurityTLSVerify checks that certificate verification is on by
// default: a server whose certificate is signed by a CA the client was not
// given is refused, and the same server is accepted once the CA is given.
func TestFaultSecurityTLSVerify(t *testing.T) {
	ts := redistest.StartTLS(t)
	logger, _ := testLogger(t)
	b, err := redis.Open(ts.TLSURL, &redis.Options{Logger: logger})
	if err == nil {
		b.Close()
		t.Fatal("Open of a rediss:// URL with a self-signed CA succeeded without the CA: verification is off")
	}
	if !strings.Contains(err.Error(), "unknown authority") {
		t.Errorf("error %q does not say the certificate's authority is unknown", err)
	}
	b, err = redis.Open(ts.TLSURL, &redis.Options{Logger: logger, TLS: &redis.TLSOptions{CAFile: ts.CAFile}})
	if err != nil {
		t.Fatalf("Open with the CA: %v", err)
	}
	b.Close()
}

// goredisLog captures go-redis's own log lines (it logs dial failures through
// a package-level logger) for the duration of a test.
type goredisLog struct{ logLines }

func (g *goredisLog) Printf(_ context.Context, format string, v ...any) {
	fmt.Fprintf(&g.logLines, format+"\n", v...)
}

// stderrLog prints go-redis's log lines to stderr, as its default logger
// does (that one cannot be restored once replaced).
type stderrLog struct{ l *log.Logger }

func (s stderrLog) Printf(_ context.Context, format string, v ...any) { s.l.Printf(format, v...) }

var goredisLogMu sync.Mutex // go-redis's logger is global: one capturing test at a time

func captureGoredisLog(t *testing.T) *goredisLog {
	t.Helper()
	goredisLogMu.Lock()
	g := &goredisLog{}
	goredis.SetLogger(g)
	t.Cleanup(func() {
		goredis.SetLogger(stderrLog{log.New(os.Stderr, "redis: ", log.LstdFlags)}) // like go-redis's default
		goredisLogMu.Unlock()
	})
	return g
}

// TestFaultSecurityNoPasswordInLogs connects with a wrong password, and runs
// a worker with the right one through a network cut, capturing every log
// line (conveyor's and go-redis's) and every error: none contains the
// password.
func TestFaultSecurityNoPasswordInLogs(t *testing.T) {
	const good, wrong = "G00d-Passw0rd-7f3e", "Wr0ng-Passw0rd-9c1d"
	rs := redistest.Start(t, redistest.WithPassword(good))
	grl := captureGoredisLog(t)
	logger, logs := testLogger(t)
	var errs []string

	_, err := redis.Open("redis://:"+wrong+"@"+rs.Addr(), &redis.Options{Namespace: rs.Namespace, Logger: logger})
	if err == nil {
		t.Fatal("Open with a wrong password succeeded")
	}
	if !strings.Contains(err.Error(), "authentication failed") {
		t.Errorf("error %q does not say authentication failed", err)
	}
	errs = append(errs, err.Error())
	_, err = redis.Open("redis://default:"+wrong+"@"+rs.Addr(), &redis.Options{Namespace: rs.Namespace, Logger: logger})
	if err == nil {
		t.Fatal("Open with a wrong user password succeeded")
	}
	errs = append(errs, err.Error())

	// A worker with the right password loses its connection for a moment:
	// the outage is logged, without the password.
	p := startProxy(t, rs.Addr())
	b := openBroker(t, "redis://:"+good+"@"+p.Addr(), rs.Namespace, "worker", logger, nil)
	prod := openBroker(t, rs.URL(), rs.Namespace, "producer", logger, nil)
	l := newLedger()
	mux := job.NewMux()
	mux.Handle("secret", recordingHandler(l, nil))
	runServer(t, b, mux, &server.Options{Concurrency: 4, Logger: logger})
	all := ids("pw", 20)
	publishAll(t, prod, "secret", all[:10], func(string) []byte { return []byte("{}") })
	waitFor(t, 30*time.Second, "first jobs processed", func() bool { return l.DoneCount() >= 10 })
	p.Cut()
	waitFor(t, 30*time.Second, "the outage logged", func() bool { return logs.Contains("fetch failed") })
	p.Restore()
	publishAll(t, prod, "secret", all[10:], func(string) []byte { return []byte("{}") })
	waitAccounted(t, prod, "secret", all, l.Done, settleWait)

	for name, out := range map[string]string{"conveyor log": logs.String(), "go-redis log": grl.String(), "errors": strings.Join(errs, "\n")} {
		for _, pw := range []string{good, wrong} {
			if strings.Contains(out, pw) {
				t.Errorf("%s contains a password:\n%s", name, out)
			}
		}
	}
	if !strings.Contains(logs.String(), "fetch failed") {
		t.Errorf("the outage was not logged")
	}
}

// aclCommands is the precise list of commands a conveyor producer and worker
// need, as documented in docs/readme/guarantees.md.
var aclCommands = []string{
	"ping", "hello", "auth", "select",
	"xadd", "xreadgroup", "xack", "xdel", "xautoclaim", "xclaim", "xpending", "xgroup|create",
	"xinfo|groups", "xinfo|stream", "xinfo|consumers", "xlen", "xrange", "xrevrange", "xtrim",
	"zadd", "zrangebyscore", "zrem", "zcard",
	"sadd", "smembers",
	"evalsha", "eval", "script|load", "script|exists",
}

// TestFaultSecurityACL runs a producer and a worker as a Redis ACL user that
// may only touch keys of its namespace and may not run dangerous commands.
// Every job is processed; the same user cannot reach another namespace, and
// a broker configured for one gets an error that names the missing
// permission.
func TestFaultSecurityACL(t *testing.T) {
	rs := redistest.Start(t, redistest.Restartable()) // our own server: ACL SETUSER must not touch a shared one
	admin := rs.Client(t)
	ctx := context.Background()
	const user, pass = "conveyor-worker", "acl-Passw0rd-42"
	args := []any{"ACL", "SETUSER", user, "reset", "on", ">" + pass, "~" + rs.Namespace + ":*", "-@all"}
	for _, c := range aclCommands {
		args = append(args, "+"+c)
	}
	if err := admin.Do(ctx, args...).Err(); err != nil {
		t.Fatalf("ACL SETUSER: %v", err)
	}
	url := fmt.Sprintf("redis://%s:%s@%s", user, pass, rs.Addr())
	logger, _ := testLogger(t)
	prod := openBroker(t, url, rs.Namespace, "producer", logger, nil)
	b := openBroker(t, url, rs.Namespace, "worker", logger, nil)
	const topic = "acl"
	l := newLedger()
	mux := job.NewMux()
	fails := map[string]bool{}
	all := ids("acl", 100)
	for _, id := range all[:10] {
		fails[id] = true
	}
	mux.Handle(topic, recordingHandler(l, func(_ context.Context, j *job.Job) error {
		switch {
		case fails[j.ID] && j.Attempt == 1:
			return job.RetryIn(10*time.Millisecond, fmt.Errorf("first attempt fails"))
		case j.ID == all[10]:
			return job.Permanent(fmt.Errorf("dead-letter me"))
		}
		return nil
	}))
	runServer(t, b, mux, &server.Options{Concurrency: 8, Logger: logger})
	publishAll(t, prod, topic, all, func(string) []byte { return []byte("{}") })
	// Retries (delayed set), dead letters and admin reads all run as the
	// restricted user.
	acc := waitAccounted(t, prod, topic, all, l.Done, settleWait)
	if acc.Processed != len(all)-1 || acc.DeadLettered != 1 {
		t.Errorf("processed %d, dead-lettered %d; want %d and 1", acc.Processed, acc.DeadLettered, len(all)-1)
	}

	restricted := goredis.NewClient(&goredis.Options{Addr: rs.Addr(), Username: user, Password: pass})
	defer restricted.Close()
	if err := restricted.Set(ctx, "other:key", "x", 0).Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Errorf("SET outside the namespace: %v, want NOPERM", err)
	}
	if err := restricted.FlushAll(ctx).Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Errorf("FLUSHALL: %v, want NOPERM", err)
	}
	other, err := redis.Open(url, &redis.Options{Namespace: "other", Logger: logger})
	if err != nil {
		t.Fatalf("Open for another namespace: %v", err)
	}
	defer other.Close()
	_, err = other.Publish(ctx, broker.Message{Topic: topic, Payload: []byte("{}")})
	if err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Errorf("Publish to another namespace: %v, want a NOPERM error", err)
	}
}

// TestFaultSecurityNamespaces runs two applications on one Redis with the
// same topic and group names in different namespaces. Neither sees the
// other's jobs.
func TestFaultSecurityNamespaces(t *testing.T) {
	rs := redistest.Start(t)
	logger, _ := testLogger(t)
	const topic = "shared-name"
	type app struct {
		ns  string
		l   *ledger
		ids []string
		b   *redis.Broker
	}
	apps := []*app{{ns: rs.Namespace + "-a"}, {ns: rs.Namespace + "-b"}}
	for i, a := range apps {
		a.l = newLedger()
		a.ids = ids(fmt.Sprintf("ns%d", i), 200)
		a.b = openBroker(t, rs.URL(), a.ns, "worker", logger, nil)
		mux := job.NewMux()
		mux.Handle(topic, recordingHandler(a.l, nil))
		runServer(t, a.b, mux, &server.Options{Concurrency: 8, Logger: logger})
	}
	for _, a := range apps {
		publishAll(t, a.b, topic, a.ids, func(string) []byte { return []byte("{}") })
	}
	for i, a := range apps {
		waitAccounted(t, a.b, topic, a.ids, a.l.Done, settleWait)
		other := apps[1-i]
		for id := range a.l.Done() {
			if strings.HasPrefix(id, other.ids[0][:3]) {
				t.Errorf("namespace %s processed job %s of namespace %s", a.ns, id, other.ns)
			}
		}
		if got := len(a.l.Done()); got != len(a.ids) {
			t.Errorf("namespace %s processed %d jobs, want %d", a.ns, got, len(a.ids))
		}
	}
}
