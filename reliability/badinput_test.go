package reliability

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/redis"
	"github.com/conveyor-jobs/conveyor/broker/redis/redistest"
	"github.com/conveyor-jobs/conveyor/config"
	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/server"
)

// seen keeps a copy of every job a handler received, by ID.
type seen struct {
	mu   sync.Mutex
	jobs map[string]job.Job
}

func (s *seen) keep(j *job.Job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.jobs == nil {
		s.jobs = map[string]job.Job{}
	}
	s.jobs[j.ID] = *j
}

func (s *seen) get(id string) (job.Job, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[id]
	return j, ok
}

// TestFaultBadInputStream writes malformed and unusual stream entries with a
// raw XADD, as any producer could, plus jobs no handler can take, and checks
// the outcome of each: processed as written (with corrections), or
// dead-lettered with a reason. Nothing panics and no entry is lost.
func TestFaultBadInputStream(t *testing.T) {
	rs := redistest.Start(t)
	logger, logs := testLogger(t)
	b := openBroker(t, rs.URL(), rs.Namespace, "worker", logger, nil)
	rdb := rs.Client(t)
	ctx := context.Background()

	const raw, typed, nobody = "raw", "typed", "nobody"
	huge := strings.Repeat("h", 1<<20)
	garbage := "\x00\xff\xfe\x80garbage\r\n\x1b[0m"
	tests := []struct {
		name   string
		topic  string
		fields []string // field, value pairs for XADD
		// want is "processed" or the dead letter's Failure.Reason.
		want  string
		check func(t *testing.T, j job.Job) // for processed jobs
	}{
		{name: "redis-cli style, payload only", topic: raw, fields: []string{"payload", `{"k":1}`}, want: "processed",
			check: func(t *testing.T, j job.Job) {
				if j.Attempt != 1 || string(j.Payload) != `{"k":1}` || j.EnqueuedAt.IsZero() {
					t.Errorf("job %+v: want attempt 1, the payload, an enqueue time from the entry ID", j)
				}
			}},
		{name: "no payload field", topic: raw, fields: []string{"id", "no-payload", "foo", "bar"}, want: redis.ReasonMalformed},
		{name: "empty field list but an id", topic: raw, fields: []string{"id", "only-id"}, want: redis.ReasonMalformed},
		{name: "bad attempt", topic: raw, fields: []string{"payload", "{}", "id", "bad-attempt", "attempt", "abc"}, want: "processed",
			check: func(t *testing.T, j job.Job) {
				if j.Attempt != 1 {
					t.Errorf("attempt %d, want 1", j.Attempt)
				}
			}},
		{name: "negative attempt", topic: raw, fields: []string{"payload", "{}", "id", "neg-attempt", "attempt", "-7"}, want: "processed",
			check: func(t *testing.T, j job.Job) {
				if j.Attempt != 1 {
					t.Errorf("attempt %d, want 1", j.Attempt)
				}
			}},
		{name: "attempt beyond the poison limit on first delivery", topic: raw, fields: []string{"payload", "{}", "id", "big-attempt", "attempt", "99"}, want: "processed",
			check: func(t *testing.T, j job.Job) {
				if j.Attempt != 99 {
					t.Errorf("attempt %d, want 99 (first deliveries are always delivered)", j.Attempt)
				}
			}},
		{name: "bad enqueued_at", topic: raw, fields: []string{"payload", "{}", "id", "bad-time", "enqueued_at", "yesterday"}, want: "processed",
			check: func(t *testing.T, j job.Job) {
				if j.EnqueuedAt.IsZero() {
					t.Errorf("EnqueuedAt is zero, want the entry time")
				}
			}},
		{name: "binary garbage payload", topic: raw, fields: []string{"payload", garbage, "id", "garbage"}, want: "processed",
			check: func(t *testing.T, j job.Job) {
				if string(j.Payload) != garbage {
					t.Errorf("payload %q, want %q", j.Payload, garbage)
				}
			}},
		{name: "huge header (1 MB)", topic: raw, fields: []string{"payload", "{}", "id", "huge-header", "h.big", huge}, want: "processed",
			check: func(t *testing.T, j job.Job) {
				if j.Header("big") != huge {
					t.Errorf("header big has %d bytes, want %d", len(j.Header("big")), len(huge))
				}
			}},
		{name: "huge payload (1 MB)", topic: raw, fields: []string{"payload", huge, "id", "huge-payload"}, want: "processed",
			check: func(t *testing.T, j job.Job) {
				if len(j.Payload) != len(huge) {
					t.Errorf("payload has %d bytes, want %d", len(j.Payload), len(huge))
				}
			}},
		{name: "empty id field", topic: raw, fields: []string{"payload", "{}", "id", ""}, want: "processed"},
		{name: "failure fields from a producer", topic: raw, fields: []string{"payload", "{}", "id", "fake-failure", "reason", "permanent", "error", "forged"}, want: "processed"},
		{name: "undecodable JSON for a typed handler", topic: typed, fields: []string{"payload", "{not json", "id", "bad-json"}, want: job.ReasonUndecodable},
		{name: "wrong JSON type for a typed handler", topic: typed, fields: []string{"payload", `{"n":"seven"}`, "id", "bad-type"}, want: job.ReasonUndecodable},
		{name: "valid JSON for a typed handler", topic: typed, fields: []string{"payload", `{"n":7}`, "id", "good-json"}, want: "processed"},
		{name: "topic without a handler", topic: nobody, fields: []string{"payload", "{}", "id", "orphan"}, want: job.ReasonNoHandler},
	}

	// The expected job ID of each case: its id field, else the entry ID.
	byTopic := map[string][]string{}
	idOf := make([]string, len(tests))
	for i, tc := range tests {
		args := make([]any, len(tc.fields))
		for k, f := range tc.fields {
			args[k] = f
		}
		entry, err := rdb.XAdd(ctx, &goredis.XAddArgs{Stream: rs.Namespace + ":{" + tc.topic + "}:stream", Values: args}).Result()
		if err != nil {
			t.Fatalf("%s: XADD: %v", tc.name, err)
		}
		idOf[i] = entry
		for k := 0; k+1 < len(tc.fields); k += 2 {
			if tc.fields[k] == "id" && tc.fields[k+1] != "" {
				idOf[i] = tc.fields[k+1]
			}
		}
		byTopic[tc.topic] = append(byTopic[tc.topic], idOf[i])
	}

	var got seen
	l := newLedger()
	mux := job.NewMux()
	mux.Handle(raw, recordingHandler(l, func(_ context.Context, j *job.Job) error { got.keep(j); return nil }))
	mux.Handle(typed, job.Typed(func(_ context.Context, v struct{ N int }, j *job.Job) error {
		got.keep(j)
		l.succeeded(j.ID)
		return nil
	}))
	runServer(t, b, mux, &server.Options{Concurrency: 4, Topics: []string{raw, typed, nobody}, Logger: logger})

	accs := map[string]*accounting{}
	for topic, want := range byTopic {
		accs[topic] = waitAccounted(t, b, topic, want, l.Done, settleWait)
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := idOf[i]
			acc := accs[tc.topic]
			dl, dead := acc.DeadByID[id]
			_, done := l.Done()[id]
			switch {
			case tc.want == "processed" && !done:
				t.Fatalf("job %s not processed (dead letter: %+v)", id, dl.Job.Failure)
			case tc.want == "processed":
				if tc.check != nil {
					j, _ := got.get(id)
					tc.check(t, j)
				}
			case !dead:
				t.Fatalf("job %s not dead-lettered (processed: %v)", id, done)
			case dl.Job.Failure == nil || dl.Job.Failure.Reason != tc.want:
				t.Fatalf("dead letter %s: failure %+v, want reason %q", id, dl.Job.Failure, tc.want)
			}
		})
	}
	if !strings.Contains(logs.String(), "malformed") {
		t.Errorf("the broker did not log the malformed entries")
	}
}

// TestFaultBadInputPublish checks messages Publish must refuse.
func TestFaultBadInputPublish(t *testing.T) {
	rs := redistest.Start(t)
	logger, _ := testLogger(t)
	b := openBroker(t, rs.URL(), rs.Namespace, "producer", logger, nil)
	tests := []struct {
		name string
		msgs []broker.Message
	}{
		{name: "empty topic", msgs: []broker.Message{{Topic: "", Payload: []byte("{}")}}},
		{name: "empty topic in a batch", msgs: []broker.Message{{Topic: "ok", Payload: []byte("{}")}, {Topic: ""}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if len(tc.msgs) == 1 {
				_, err = b.Publish(context.Background(), tc.msgs[0])
			} else {
				_, err = b.PublishBatch(context.Background(), tc.msgs)
			}
			if !errors.Is(err, broker.ErrInvalidMessage) {
				t.Fatalf("error %v, want broker.ErrInvalidMessage", err)
			}
		})
	}
}

// TestFaultBadInputURL gives redis.Open malformed and unreachable URLs. Each
// gets an error that says what is wrong, at once, and none repeats the
// password.
func TestFaultBadInputURL(t *testing.T) {
	const secret = "Sup3rSecretPw"
	tests := []struct {
		name string
		url  string
		want string // in the error text
	}{
		{name: "empty", url: "", want: "the URL is empty: set REDIS_URL"},
		{name: "wrong scheme", url: "http://:" + secret + "@127.0.0.1:6379", want: "scheme"},
		{name: "no scheme", url: "127.0.0.1:6379", want: "invalid Redis URL"},
		{name: "no scheme, with a password", url: "default:" + secret + "@127.0.0.1:6379", want: "invalid Redis URL"},
		// The last '@' ends the user info, so this parses (the password
		// is secret+"@x") and fails only at the connection.
		{name: "unencoded @ in password", url: "redis://user:" + secret + "@x@127.0.0.1:1", want: "connection refused"},
		{name: "unencoded / in password", url: "redis://:" + secret + "/x@127.0.0.1:1", want: "Redis URL"},
		{name: "unencoded # in password", url: "redis://:" + secret + "#x@127.0.0.1:1", want: "Redis URL"},
		{name: "bad port", url: "redis://:" + secret + "@127.0.0.1:port", want: "Redis URL"},
		{name: "bad database", url: "redis://:" + secret + "@127.0.0.1:6379/db", want: "database"},
		{name: "refused", url: "redis://:" + secret + "@127.0.0.1:1", want: "connection refused"},
		{name: "bad query option", url: "redis://:" + secret + "@127.0.0.1:1?dial_timeout=soon", want: "dial_timeout"},
		{name: "control character", url: "redis://:" + secret + "@127.0.0.1:1/\x7f", want: "Redis URL"},
	}
	logger, logs := testLogger(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := redis.Open(tc.url, &redis.Options{Logger: logger})
			if err == nil {
				b.Close()
				t.Fatalf("Open(%q) succeeded", tc.url)
			}
			msg := err.Error()
			if strings.Contains(msg, secret) {
				t.Errorf("error repeats the password: %v", msg)
			}
			if !strings.Contains(msg, tc.want) {
				t.Errorf("error %q does not mention %q", msg, tc.want)
			}
		})
	}
	if strings.Contains(logs.String(), secret) {
		t.Errorf("a log line repeats the password:\n%s", logs.String())
	}
}

// TestFaultBadInputTLS tries the wrong TLS and port combinations against a
// Redis that speaks TLS on one port and plain TCP on another. Each fails
// with an error that says which mistake it is; the right combination works.
func TestFaultBadInputTLS(t *testing.T) {
	ts := redistest.StartTLS(t)
	tests := []struct {
		name string
		url  string
		tls  *redis.TLSOptions
		want string // in the error; "" means Open must succeed
	}{
		{name: "rediss to the plain port", url: "rediss://" + ts.PlainAddr, tls: &redis.TLSOptions{CAFile: ts.CAFile}, want: "does not speak TLS"},
		{name: "redis to the TLS port", url: "redis://" + ts.TLSAddr, want: "TLS"},
		{name: "rediss without the CA", url: ts.TLSURL, want: "unknown authority"},
		{name: "rediss with a wrong server name", url: ts.TLSURL, tls: &redis.TLSOptions{CAFile: ts.CAFile, ServerName: "redis.example.com"}, want: "host name"},
		{name: "TLS options on a redis URL", url: ts.PlainURL, tls: &redis.TLSOptions{CAFile: ts.CAFile}, want: "not a rediss:// URL"},
		{name: "CA file missing", url: ts.TLSURL, tls: &redis.TLSOptions{CAFile: filepath.Join(t.TempDir(), "none.pem")}, want: "CA file"},
		{name: "rediss with the CA", url: ts.TLSURL, tls: &redis.TLSOptions{CAFile: ts.CAFile}},
		{name: "rediss with a client certificate", url: ts.TLSURL, tls: &redis.TLSOptions{CAFile: ts.CAFile, CertFile: ts.CertFile, KeyFile: ts.KeyFile}},
		{name: "redis to the plain port", url: ts.PlainURL},
	}
	logger, _ := testLogger(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := tc.url
			if strings.Contains(u, "?") {
				u += "&"
			} else {
				u += "?"
			}
			u += "dial_timeout=2s&read_timeout=2s"
			b, err := redis.Open(u, &redis.Options{Namespace: ts.Namespace, TLS: tc.tls, Logger: logger})
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				defer b.Close()
				if _, err := b.Publish(context.Background(), broker.Message{Topic: "tls", Payload: []byte("{}")}); err != nil {
					t.Fatalf("Publish: %v", err)
				}
				return
			}
			if err == nil {
				b.Close()
				t.Fatalf("Open succeeded, want an error mentioning %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

// TestFaultBadInputConfig loads config files with unknown keys and invalid
// values. Each is an error matching config.ErrInvalid that names the key and
// the file, and none repeats a password.
func TestFaultBadInputConfig(t *testing.T) {
	const secret = "Sup3rSecretPw"
	tests := []struct {
		name string
		yaml string
		want []string // in the error text, besides the file name
	}{
		{name: "unknown top-level key", yaml: "bakend: redis\n", want: []string{"bakend", "backend"}},
		{name: "unknown nested key", yaml: "redis:\n  namespce: x\n", want: []string{"redis.namespce"}},
		{name: "bad backend", yaml: "backend: kafka\n", want: []string{"backend", "kafka"}},
		{name: "bad duration", yaml: "redis:\n  lease: forever\n", want: []string{"redis.lease"}},
		{name: "negative concurrency", yaml: "worker:\n  concurrency: -3\n", want: []string{"worker.concurrency"}},
		{name: "not a number", yaml: "worker:\n  concurrency: many\n", want: []string{"worker.concurrency"}},
		{name: "namespace with braces", yaml: "redis:\n  namespace: \"a{b}\"\n", want: []string{"redis.namespace"}},
		{name: "URL with unencoded password", yaml: "redis:\n  url: \"redis://:" + secret + "@x@localhost:6379\"\n", want: []string{"redis.url"}},
		{name: "URL with / in the password", yaml: "redis:\n  url: \"redis://:" + secret + "/x@localhost:6379\"\n", want: []string{"redis.url"}},
		{name: "URL without a scheme", yaml: "redis:\n  url: \"default:" + secret + "@localhost:6379\"\n", want: []string{"redis.url"}},
		{name: "TLS file with a plain URL", yaml: "redis:\n  url: redis://localhost:6379\ntls:\n  ca_file: /ca.pem\n", want: []string{"tls.ca_file", "rediss://"}},
		{name: "not YAML", yaml: "redis: [\n", want: []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "config.yaml")
			if err := os.WriteFile(file, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := config.Load(&config.Options{File: file, Dir: dir, NoDotEnv: true,
				LookupEnv: func(string) (string, bool) { return "", false }})
			if !errors.Is(err, config.ErrInvalid) {
				t.Fatalf("Load: %v, want an error matching config.ErrInvalid", err)
			}
			msg := err.Error()
			for _, w := range append(tc.want, file) {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
			if strings.Contains(msg, secret) {
				t.Errorf("error repeats the password: %q", msg)
			}
		})
	}
}
