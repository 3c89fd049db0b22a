package reliability

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/redis"
	"github.com/conveyor-jobs/conveyor/broker/redis/redistest"
	"github.com/conveyor-jobs/conveyor/internal/clocktest"
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

// aclCommands is the precise list of commands conveyor's Redis broker needs
// for every operation (publish, fetch, settle, recovery, inspection and
// health, dead-letter administration, trim and its dry run, delayed jobs,
// server version), as documented in docs/redis.md (A least-privilege ACL user).
// TestFaultSecurityACLEveryOperation runs each operation with exactly these.
var aclCommands = []string{
	"ping", "hello", "auth", "select",
	"xadd", "xreadgroup", "xack", "xdel", "xautoclaim", "xclaim", "xpending", "xgroup|create", "xgroup|delconsumer",
	"xinfo|groups", "xinfo|stream", "xinfo|consumers", "xlen", "xrange", "xrevrange", "xtrim",
	"zadd", "zrange", "zrangebyscore", "zrem", "zcard",
	"sadd", "smembers", "scan",
	"set", "get", // a settle's marker, which recognises a settle run again after a lost reply
	"del", "pexpire", "pexpireat", // unique jobs' claims, pausing and resuming
	"evalsha", "eval",
}

// setACLUser creates (or replaces) user on the server of admin with
// password pass, allowed the keys of namespace ns and exactly commands.
func setACLUser(t testing.TB, admin *goredis.Client, ns, user, pass string, commands []string) {
	t.Helper()
	args := []any{"ACL", "SETUSER", user, "reset", "on", ">" + pass, "~" + ns + ":*", "-@all"}
	for _, c := range commands {
		args = append(args, "+"+c)
	}
	if err := admin.Do(context.Background(), args...).Err(); err != nil {
		t.Fatalf("ACL SETUSER: %v", err)
	}
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
	setACLUser(t, admin, rs.Namespace, user, pass, aclCommands)
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

	// A command refused inside a script is reported as a missing
	// permission that names the command, not as a bare script error.
	setACLUser(t, admin, rs.Namespace, user, pass, slices.DeleteFunc(slices.Clone(aclCommands), func(c string) bool { return c == "xinfo|groups" }))
	if _, err := prod.Publish(ctx, broker.Message{Topic: "acl-trim", Payload: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	_, err = prod.Trim(ctx, "acl-trim", broker.TrimOptions{MaxLen: 1})
	for _, want := range []string{"NOPERM", "XINFO GROUPS", "+xinfo|groups"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Trim without xinfo|groups: %v, want an error saying %q", err, want)
		}
	}
}

// TestFaultSecurityACLEveryOperation runs every operation of the Redis
// broker as an ACL user granted exactly aclCommands, on database 1 (so
// SELECT is needed): a permission missing from the list fails the test with
// the NOPERM error of the operation that needs it.
func TestFaultSecurityACLEveryOperation(t *testing.T) {
	rs := redistest.Start(t, redistest.Restartable()) // our own server: ACL SETUSER must not touch a shared one
	const user, pass = "conveyor-ops", "acl-Passw0rd-43"
	setACLUser(t, rs.Client(t), rs.Namespace, user, pass, aclCommands)
	ro := rs.Options()
	ro.DB = 1
	raw := goredis.NewClient(ro) // a producer outside conveyor, as the admin user
	defer raw.Close()
	exerciseEveryOperation(t, fmt.Sprintf("redis://%s:%s@%s/1", user, pass, rs.Addr()), rs.Namespace, raw)
}

// exerciseEveryOperation runs every broker operation through brokers opened
// with url and fails t at the first error. raw writes to the same database
// as a producer outside conveyor would.
func exerciseEveryOperation(t *testing.T, url, ns string, raw *goredis.Client) {
	ctx := context.Background()
	logger, _ := testLogger(t)
	clk := clocktest.New(time.Now())
	mod := func(o *redis.Options) {
		o.Lease = 200 * time.Millisecond
		o.ClaimInterval = 20 * time.Millisecond
		o.Block = 50 * time.Millisecond
		o.MaxDeliveries = 2
		o.Now = clk.Now
	}
	// Open: PING, and HELLO, AUTH and SELECT on every connection.
	a := openBroker(t, url, ns, "a", logger, mod)
	bb := openBroker(t, url, ns, "b", logger, mod)
	must := func(op string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s as the ACL user: %v", op, err)
		}
	}
	// fetch fetches topics through b until n deliveries came, or fails.
	fetch := func(b *redis.Broker, topics []string, n int) []*broker.Delivery {
		t.Helper()
		var out []*broker.Delivery
		deadline := time.Now().Add(10 * time.Second)
		for len(out) < n {
			if time.Now().After(deadline) {
				t.Fatalf("fetched %d deliveries of %v, want %d", len(out), topics, n)
			}
			ds, err := b.Fetch(ctx, topics, n-len(out))
			must("Fetch", err)
			out = append(out, ds...)
		}
		return out
	}

	info, err := a.ServerInfo(ctx)
	must("ServerInfo", err)
	if info.Version == "" {
		t.Fatalf("ServerInfo = %+v, no version", info)
	}

	// Publish: one job, a delayed one, a batch over two topics.
	_, err = a.Publish(ctx, broker.Message{Topic: "orders", Payload: []byte("1")})
	must("Publish", err)
	_, err = a.Publish(ctx, broker.Message{Topic: "orders", ID: "later", Payload: []byte("2"), Delay: time.Hour})
	must("Publish delayed", err)
	_, err = a.PublishBatch(ctx, []broker.Message{{Topic: "orders", Payload: []byte("3")}, {Topic: "audit", Payload: []byte("4")}})
	must("PublishBatch", err)
	// A topic written only by XADD (the manual's redis-cli producer).
	must("raw XADD", raw.XAdd(ctx, &goredis.XAddArgs{Stream: ns + ":{raw}:stream", Values: []string{"payload", "{}"}}).Err())

	// Inspection finds the raw topic too (SCAN).
	ts, err := a.Topics(ctx)
	must("Topics", err)
	for _, want := range []string{"audit", "orders", "raw"} {
		if !slices.Contains(ts, want) {
			t.Fatalf("Topics = %v, missing %q", ts, want)
		}
	}

	// Fetch, Extend, and every settlement.
	ds := fetch(a, []string{"orders", "audit", "raw"}, 4)
	must("Extend", a.Extend(ctx, ds...))
	byPayload := map[string]*broker.Delivery{}
	for _, d := range ds {
		byPayload[d.Job.Topic+"/"+string(d.Job.Payload)] = d
	}
	must("Ack", a.Ack(ctx, byPayload["audit/4"]))
	must("Retry now", a.Retry(ctx, byPayload["orders/1"], 0, job.Failure{Error: "again"}))
	must("Retry later", a.Retry(ctx, byPayload["orders/3"], time.Minute, job.Failure{Error: "later"}))
	must("DeadLetter", a.DeadLetter(ctx, byPayload["raw/{}"], job.Failure{Error: "dead", Reason: job.ReasonPermanent}))
	again := fetch(a, []string{"orders"}, 1)[0]
	if again.Job.Attempt != 2 {
		t.Fatalf("retried job has attempt %d, want 2", again.Job.Attempt)
	}
	must("Ack", a.Ack(ctx, again))

	// Unique jobs: the claim taken with the job, a duplicate, kept by a
	// retry (PEXPIRE), kept by an ack with UniqueFor (PEXPIREAT), released
	// by an ack (DEL) and a dead-lettering, taken again by a replay.
	_, err = a.PublishBatch(ctx, []broker.Message{
		{Topic: "unique", Payload: []byte("u1"), UniqueKey: "u1", UniqueFor: time.Hour},
		{Topic: "unique", Payload: []byte("u2"), UniqueKey: "u2"},
		{Topic: "unique", Payload: []byte("u3"), UniqueKey: "u3"},
	})
	must("PublishBatch unique", err)
	if _, err := a.Publish(ctx, broker.Message{Topic: "unique", UniqueKey: "u1"}); !errors.Is(err, broker.ErrDuplicate) {
		t.Fatalf("Publish of a held unique key as the ACL user: %v, want ErrDuplicate", err)
	}
	us := map[string]*broker.Delivery{}
	for _, d := range fetch(a, []string{"unique"}, 3) {
		us[string(d.Job.Payload)] = d
	}
	must("Retry unique", a.Retry(ctx, us["u1"], 0, job.Failure{Error: "again"}))
	must("Ack unique", a.Ack(ctx, fetch(a, []string{"unique"}, 1)[0], us["u2"]))
	must("DeadLetter unique", a.DeadLetter(ctx, us["u3"], job.Failure{Error: "dead", Reason: job.ReasonPermanent}))
	moved, err := a.ReplayDeadLetters(ctx, "unique", nil)
	must("ReplayDeadLetters unique", err)
	if moved != 1 {
		t.Fatalf("replayed %d unique dead letters, want 1", moved)
	}
	must("Ack replayed unique", a.Ack(ctx, fetch(a, []string{"unique"}, 1)[0]))

	// Recovery: b takes over a's expired lease, then a dead-letters the
	// job delivered MaxDeliveries times with no outcome.
	_, err = a.Publish(ctx, broker.Message{Topic: "recover", Payload: []byte("r")})
	must("Publish", err)
	fetch(a, []string{"recover"}, 1)
	rec := fetch(bb, []string{"recover"}, 1)[0]
	if rec.Job.Attempt != 2 {
		t.Fatalf("recovered job has attempt %d, want 2", rec.Job.Attempt)
	}
	must("Snooze", bb.Snooze(ctx, rec, time.Minute))
	_, err = a.Publish(ctx, broker.Message{Topic: "poison", Payload: []byte("p")})
	must("Publish", err)
	fetch(a, []string{"poison"}, 1)
	fetch(bb, []string{"poison"}, 1)
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := a.Fetch(ctx, []string{"poison"}, 1)
		must("Fetch", err)
		pi, err := a.Inspect(ctx, "poison")
		must("Inspect", err)
		if pi.DeadLetters == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the poison job was not dead-lettered by recovery: %+v", pi)
		}
	}

	// Delayed jobs: list, delete, and promotion when due.
	_, err = a.Publish(ctx, broker.Message{Topic: "orders", ID: "delete-me", Payload: []byte("5"), Delay: time.Hour})
	must("Publish delayed", err)
	dj, err := a.DelayedJobs(ctx, "orders", 10)
	must("DelayedJobs", err)
	if len(dj) != 3 {
		t.Fatalf("DelayedJobs = %d jobs, want 3 (later, the retry, delete-me)", len(dj))
	}
	must("DeleteDelayed", a.DeleteDelayed(ctx, "orders", "delete-me"))
	clk.Advance(2 * time.Hour)
	due := fetch(a, []string{"orders", "recover"}, 3)
	must("Ack", a.Ack(ctx, due...))

	// Inspection and health.
	for _, topic := range []string{"orders", "audit", "raw", "recover", "poison"} {
		_, err := a.Inspect(ctx, topic)
		must("Inspect "+topic, err)
		_, _, err = a.StreamCounters(ctx, topic)
		must("StreamCounters "+topic, err)
		_, err = a.PendingEntries(ctx, topic, 10)
		must("PendingEntries "+topic, err)
	}
	must("Check", a.Check(ctx))

	// Consumers: a snooze with its cause; a consumer holding nothing leaves
	// its group.
	_, err = a.Publish(ctx, broker.Message{Topic: "leave", Payload: []byte("l")})
	must("Publish", err)
	must("SnoozeBecause", a.SnoozeBecause(ctx, fetch(a, []string{"leave"}, 1)[0], 0, "conveyor: circuit open"))
	must("Ack", a.Ack(ctx, fetch(a, []string{"leave"}, 1)...))
	left, err := a.DeleteIdleConsumer(ctx, "leave", a.Options().Group, a.Options().Consumer, 0)
	must("DeleteIdleConsumer", err)
	if !left {
		t.Fatal("DeleteIdleConsumer kept a consumer holding nothing")
	}

	// Dead letters: list, show, replay, purge.
	dls, err := a.DeadLetters(ctx, "raw", "", 10)
	must("DeadLetters", err)
	if len(dls) != 1 {
		t.Fatalf("DeadLetters(raw) = %d, want 1", len(dls))
	}
	_, err = a.DeadLetterByID(ctx, "raw", dls[0].ID)
	must("DeadLetterByID", err)
	n, err := a.ReplayDeadLetters(ctx, "raw", nil)
	must("ReplayDeadLetters", err)
	if n != 1 {
		t.Fatalf("ReplayDeadLetters moved %d, want 1", n)
	}
	replayed := fetch(a, []string{"raw"}, 1)[0]
	must("DeadLetter", a.DeadLetter(ctx, replayed, job.Failure{Error: "dead again", Reason: job.ReasonPermanent}))
	n, err = a.PurgeDeadLetters(ctx, "raw", nil)
	must("PurgeDeadLetters", err)
	if n != 1 {
		t.Fatalf("PurgeDeadLetters deleted %d, want 1", n)
	}

	// Trim and its dry run, with pending and unread entries, and a
	// dead-letter stream nobody reads.
	for i := range 6 {
		_, err := a.Publish(ctx, broker.Message{Topic: "trim", Payload: []byte(strconv.Itoa(i))})
		must("Publish", err)
	}
	fetch(a, []string{"trim"}, 2)
	for _, c := range []struct {
		topic string
		opts  broker.TrimOptions
	}{
		{"trim", broker.TrimOptions{MaxLen: 1}},
		{"trim", broker.TrimOptions{MaxLen: 1, IncludeUnread: true}},
		{"trim", broker.TrimOptions{OlderThan: time.Millisecond, IncludeUnread: true}},
		{"poison.dlq", broker.TrimOptions{OlderThan: time.Millisecond, IncludeUnread: true}},
	} {
		dry, err := a.TrimDryRun(ctx, c.topic, c.opts)
		must("TrimDryRun", err)
		removed, err := a.Trim(ctx, c.topic, c.opts)
		must("Trim", err)
		if dry != removed {
			t.Errorf("Trim(%s, %+v): dry run said %d, the trim removed %d", c.topic, c.opts, dry, removed)
		}
	}

	// A dead-letter stream written by another producer is discovered too.
	must("raw XADD", raw.XAdd(ctx, &goredis.XAddArgs{Stream: ns + ":{dead-only}:dlq", Values: []string{"payload", "{}"}}).Err())
	clk.Advance(time.Hour) // past the discovery interval
	ts, err = a.Topics(ctx)
	must("Topics", err)
	if !slices.Contains(ts, "dead-only") {
		t.Fatalf("Topics = %v, missing dead-only", ts)
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
