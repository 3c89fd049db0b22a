package config_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/conveyor-jobs/conveyor/config"
)

// env is a fake environment for Options.LookupEnv.
type env map[string]string

func (e env) lookup(k string) (string, bool) { v, ok := e[k]; return v, ok }

// setup writes the files (name → content) into a temp dir and returns Options
// reading them with environment e.
func setup(t *testing.T, files map[string]string, e env) *config.Options {
	t.Helper()
	dir := t.TempDir()
	o := &config.Options{Dir: dir, LookupEnv: e.lookup}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if name != ".env" {
			o.File = p
		}
	}
	return o
}

func TestPrecedence(t *testing.T) {
	const file = "redis:\n  namespace: from-file\n  group: file-group\nworker:\n  concurrency: 3\n"
	tests := []struct {
		name      string
		files     map[string]string
		env       env
		wantNS    string
		wantSrc   string
		wantGroup string
	}{
		{"default", nil, nil, "conveyor", "default", "conveyor"},
		{"file", map[string]string{"config.yaml": file}, nil, "from-file", "file ", "file-group"},
		{".env over file", map[string]string{"config.yaml": file, ".env": "REDIS_NAMESPACE=from-dotenv\n"}, nil,
			"from-dotenv", ".env REDIS_NAMESPACE", "file-group"},
		{"env over .env and file", map[string]string{"config.yaml": file, ".env": "REDIS_NAMESPACE=from-dotenv\n"},
			env{"REDIS_NAMESPACE": "from-env"}, "from-env", "env REDIS_NAMESPACE", "file-group"},
		{"env over file", map[string]string{"config.yaml": file}, env{"REDIS_NAMESPACE": "from-env", "CONVEYOR_REDIS_GROUP": "g2"},
			"from-env", "env REDIS_NAMESPACE", "g2"},
		{"env without file", map[string]string{".env": "REDIS_CONSUMER=dotenv-worker\n"},
			env{"REDIS_NAMESPACE": "ns"}, "ns", "env REDIS_NAMESPACE", "conveyor"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Load(setup(t, tt.files, tt.env))
			if err != nil {
				t.Fatal(err)
			}
			if c.Redis.Namespace != tt.wantNS {
				t.Errorf("namespace = %q, want %q", c.Redis.Namespace, tt.wantNS)
			}
			if src := c.Source("redis.namespace").String(); !strings.Contains(src, tt.wantSrc) {
				t.Errorf("source = %q, want it to contain %q", src, tt.wantSrc)
			}
			if c.Redis.Group != tt.wantGroup {
				t.Errorf("group = %q, want %q", c.Redis.Group, tt.wantGroup)
			}
		})
	}
}

func TestDotEnvDoesNotOverrideEnvironment(t *testing.T) {
	o := setup(t, map[string]string{".env": "REDIS_URL=redis://dotenv:6379/0\nREDIS_CONSUMER=from-dotenv\n"},
		env{"REDIS_URL": "redis://env:6379/0"})
	c, err := config.Load(o)
	if err != nil {
		t.Fatal(err)
	}
	if c.Redis.URL != "redis://env:6379/0" || c.Redis.Consumer != "from-dotenv" {
		t.Fatalf("url %q consumer %q", c.Redis.URL, c.Redis.Consumer)
	}
}

func TestConfigFileFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(p, []byte("worker:\n  concurrency: 7\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(&config.Options{Dir: dir, LookupEnv: env{config.EnvConfigFile: p}.lookup})
	if err != nil {
		t.Fatal(err)
	}
	if c.Worker.Concurrency != 7 {
		t.Fatalf("concurrency = %d, want 7", c.Worker.Concurrency)
	}
}

func TestMissingFile(t *testing.T) {
	for _, viaEnv := range []bool{false, true} {
		missing := filepath.Join(t.TempDir(), "nope.yaml")
		o := &config.Options{NoDotEnv: true, LookupEnv: env{}.lookup}
		if viaEnv {
			o.LookupEnv = env{config.EnvConfigFile: missing}.lookup
		} else {
			o.File = missing
		}
		_, err := config.Load(o)
		var pe *fs.PathError
		if !errors.As(err, &pe) || !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), missing) {
			t.Fatalf("viaEnv=%v: err = %v, want a *fs.PathError naming %s and matching ErrInvalid", viaEnv, err, missing)
		}
	}
}

func TestNoFileIsFine(t *testing.T) {
	c, err := config.Load(&config.Options{Dir: t.TempDir(), LookupEnv: env{}.lookup})
	if err != nil {
		t.Fatal(err)
	}
	want := config.Default()
	if c.Redis != (config.Redis{URL: want.Redis.URL, Namespace: want.Redis.Namespace, Consumer: c.Redis.Consumer,
		Group: want.Redis.Group, Lease: want.Redis.Lease, MaxDeliveries: want.Redis.MaxDeliveries, DialTimeout: want.Redis.DialTimeout,
		PublishCoalescing: true, ResultRetention: want.Redis.ResultRetention}) {
		t.Fatalf("redis = %+v", c.Redis)
	}
	if c.Redis.Consumer == "" || !strings.Contains(c.Redis.Consumer, "-") {
		t.Fatalf("consumer default = %q, want hostname-pid", c.Redis.Consumer)
	}
}

func TestUnknownKeys(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"typo with suggestion", "redis:\n  urll: redis://x:6379\n", []string{`unknown key "redis.urll"`, `did you mean "redis.url"`}},
		{"unknown section", "redsi:\n  url: redis://x:6379\n", []string{`unknown key "redsi.url"`}},
		{"top-level typo", "backnd: memory\n", []string{`unknown key "backnd"`, `"backend"`}},
		{"keys under a leaf", "redis:\n  url:\n    host: x\n", []string{`unknown key "redis.url.host"`}},
		{"section given a scalar", "worker: 5\n", []string{"worker", "is a section", "worker.topics"}},
		{"unknown rule field", "ratelimit:\n  rules:\n    - tenant: a\n      rate: 1\n      burts: 2\n", []string{"ratelimit.rules", "burts"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := setup(t, map[string]string{"config.yaml": tt.yaml}, env{})
			_, err := config.Load(o)
			if err == nil || !errors.Is(err, config.ErrInvalid) {
				t.Fatalf("err = %v, want an ErrInvalid", err)
			}
			for _, w := range append(tt.want, o.File) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestBadValues(t *testing.T) {
	tests := []struct {
		name string
		env  env
		file string
		// want: substrings of the error (key, value, source, reason)
		want []string
	}{
		{"duration without unit in file", nil, "redis:\n  lease: 30\n",
			[]string{"redis.lease", `"30"`, "file ", "needs a unit"}},
		{"bad duration in env", env{"CONVEYOR_REDIS_LEASE": "soon"}, "",
			[]string{"redis.lease", `"soon"`, "env CONVEYOR_REDIS_LEASE", "not a duration"}},
		{"negative lease", env{"CONVEYOR_REDIS_LEASE": "-5s"}, "",
			[]string{"redis.lease", `"-5s"`, "env CONVEYOR_REDIS_LEASE", "must be positive"}},
		{"bad schedule item", env{"CONVEYOR_RETRY_SCHEDULE": "5s, 1x"}, "",
			[]string{"retry.schedule", "item 2", "env CONVEYOR_RETRY_SCHEDULE"}},
		{"concurrency not a number", env{"CONVEYOR_WORKER_CONCURRENCY": "many"}, "",
			[]string{"worker.concurrency", `"many"`, "whole number"}},
		{"concurrency zero", nil, "worker:\n  concurrency: 0\n",
			[]string{"worker.concurrency", `"0"`, "file ", "positive"}},
		{"backend", env{"QUEUE_BACKEND": "kafka"}, "",
			[]string{"backend", `"kafka"`, "env QUEUE_BACKEND", "redis, memory"}},
		{"log level", env{"CONVEYOR_LOG_LEVEL": "loud"}, "", []string{"log.level", "loud", "debug, info"}},
		{"jitter", env{"CONVEYOR_RETRY_JITTER": "2"}, "", []string{"retry.jitter", "between 0 and 1"}},
		{"bool", env{"CONVEYOR_TLS_INSECURE_SKIP_VERIFY": "maybe"}, "", []string{"tls.insecure_skip_verify", "true or false"}},
		{"metrics addr", env{"CONVEYOR_METRICS_ADDR": "9090"}, "", []string{"metrics.addr", "host:port"}},
		{"rule syntax", env{"CONVEYOR_RATELIMIT_RULES": "tenant acme"}, "", []string{"ratelimit.rules", "name=value"}},
		{"rule rate", env{"CONVEYOR_RATELIMIT_RULES": "tenant=a rate=0 burst=1"}, "", []string{"ratelimit.rules", "rate must be positive"}},
		{"namespace with braces", env{"REDIS_NAMESPACE": "a{b}"}, "", []string{"redis.namespace", "braces"}},
		{"cert without key", env{"REDIS_URL": "rediss://h:6380/0", "CONVEYOR_TLS_CERT_FILE": "/etc/hostname"}, "",
			[]string{"tls.key_file", "both"}},
		{"missing CA file", env{"REDIS_URL": "rediss://h:6380/0", "CONVEYOR_TLS_CA_FILE": "/nonexistent/ca.pem"}, "",
			[]string{"tls.ca_file", "/nonexistent/ca.pem", "env CONVEYOR_TLS_CA_FILE", "no such file"}},
		{"TLS settings with redis://", env{"CONVEYOR_TLS_INSECURE_SKIP_VERIFY": "true"}, "",
			[]string{"tls.insecure_skip_verify", "use rediss://"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{}
			if tt.file != "" {
				files["config.yaml"] = tt.file
			}
			_, err := config.Load(setup(t, files, tt.env))
			if err == nil || !errors.Is(err, config.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			var ce *config.Error
			if !errors.As(err, &ce) {
				t.Errorf("err %T does not hold a *config.Error", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestValuesDecode(t *testing.T) {
	c, err := config.Load(setup(t, map[string]string{
		"config.yaml": "retry:\n  schedule: [1s, 2m]\nratelimit:\n  rules:\n    - tenant: '*'\n      rate: 2.5\n      burst: 5\n",
	}, env{
		"CONVEYOR_WORKER_TOPICS":         "orchestrate, ingest",
		"CONVEYOR_REDIS_LEASE":           "1m30s",
		"CONVEYOR_RATELIMIT_DISTRIBUTED": "true",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Retry.Schedule, []time.Duration{time.Second, 2 * time.Minute}) {
		t.Errorf("schedule = %v", c.Retry.Schedule)
	}
	if !slices.Equal(c.Worker.Topics, []string{"orchestrate", "ingest"}) {
		t.Errorf("topics = %q", c.Worker.Topics)
	}
	if c.Redis.Lease != 90*time.Second || !c.RateLimit.Distributed {
		t.Errorf("lease %v distributed %v", c.Redis.Lease, c.RateLimit.Distributed)
	}
	if want := []config.Rule{{Tenant: "*", Rate: 2.5, Burst: 5}}; !reflect.DeepEqual(c.RateLimit.Rules, want) {
		t.Errorf("rules = %+v, want %+v", c.RateLimit.Rules, want)
	}

	c, err = config.Load(setup(t, nil, env{"CONVEYOR_RATELIMIT_RULES": "tenant=* rate=5 burst=10; operation=llm,rate=0.5,burst=1"}))
	if err != nil {
		t.Fatal(err)
	}
	want := []config.Rule{{Tenant: "*", Rate: 5, Burst: 10}, {Operation: "llm", Rate: 0.5, Burst: 1}}
	if !reflect.DeepEqual(c.RateLimit.Rules, want) {
		t.Errorf("rules from env = %+v, want %+v", c.RateLimit.Rules, want)
	}
	if got := entry(t, c, "ratelimit.rules").Value; got != "tenant=* rate=5 burst=10; operation=llm rate=0.5 burst=1" {
		t.Errorf("printed rules = %q", got)
	}
}

func entry(t *testing.T, c *config.Config, key string) config.Entry {
	t.Helper()
	for _, e := range c.Entries() {
		if e.Key == key {
			return e
		}
	}
	t.Fatalf("no entry %q", key)
	return config.Entry{}
}

func TestBadURLs(t *testing.T) {
	const secret = "p@ss/w#rd"
	tests := []struct {
		name, url string
		want      []string
	}{
		{"unencoded @ / #", "redis://default:" + secret + "@redis.example.com:6379/0", []string{`"@" as %40`, `"/" as %2F`, `"#" as %23`, "URL-encoded"}},
		{"unencoded colon", "redis://default:pa:ss@h:6379/0", []string{`":" as %3A`}},
		{"bad percent", "redis://default:100%sure@h:6379/0", []string{`"%" as %25`}},
		{"no scheme", "localhost:6379", []string{"missing scheme", "redis://"}},
		{"no scheme, with a password", "default:100%sure@localhost:6379", []string{"missing scheme"}},
		{"wrong scheme", "http://localhost:6379", []string{"scheme must be redis:// or rediss://"}},
		{"no host", "redis:///0", []string{"missing host"}},
		{"bad db", "redis://localhost:6379/abc", []string{"database"}},
		{"port out of range", "redis://localhost:99999/0", []string{`port "99999"`, "1 to 65535"}},
		{"port zero", "rediss://localhost:0/0", []string{`port "0"`}},
		{"bad port of a cluster seed", "redis://a:7000,b:70000,c:7002/0?cluster=true", []string{`port "70000" of b`}},
		{"empty port", "redis://localhost:/0", []string{`the port after "localhost" is empty`}},
		{"empty host in a cluster list", "redis://a:7000,,c:7002/0?cluster=true", []string{"host 2 of 3", "empty"}},
		{"leading comma", "redis://,b:7001/0?cluster=true", []string{"host 1 of 2", "empty"}},
		{"empty", "", []string{"must not be empty"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Load(setup(t, nil, env{"REDIS_URL": tt.url}))
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			for _, w := range append(tt.want, "redis.url", "env REDIS_URL") {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			for _, leak := range []string{secret, "pa:ss", "100%sure"} {
				if strings.Contains(msg, leak) {
					t.Errorf("error %q leaks the password", msg)
				}
			}
		})
	}
}

func TestRedaction(t *testing.T) {
	// Entries (what `conveyor config print` shows) never hold the password.
	c, err := config.Load(setup(t, map[string]string{".env": "REDIS_URL=redis://app:hunter2pass@h:6379/0\n"}, env{}))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range c.Entries() {
		if strings.Contains(e.Value, "hunter2pass") {
			t.Fatalf("entry %s leaks the password: %q", e.Key, e.Value)
		}
	}
	if e := entry(t, c, "redis.url"); e.Value != "redis://app:xxxxx@h:6379/0" || !strings.Contains(e.Source, ".env REDIS_URL") {
		t.Fatalf("redis.url entry = %+v", e)
	}
	if c.Redis.URL != "redis://app:hunter2pass@h:6379/0" {
		t.Fatalf("the effective URL must keep the password: %q", c.Redis.URL)
	}
}

// TestExampleCoversEveryKey loads config.yaml.example, checks that it lists
// every key of the Config struct (and nothing else), that each key's comment
// names its environment variable, and that its values are the defaults.
func TestExampleCoversEveryKey(t *testing.T) {
	const path = "../config.yaml.example"
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	var got []string
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			if sub, ok := v.(map[string]any); ok {
				walk(prefix+k+".", sub)
				continue
			}
			got = append(got, prefix+k)
		}
	}
	walk("", doc)
	want := config.Keys()
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Fatalf("config.yaml.example keys:\n%q\nstruct keys:\n%q", got, want)
	}
	for _, k := range want {
		if !strings.Contains(string(data), config.EnvVar(k)) {
			t.Errorf("config.yaml.example does not name %s, the variable for %s", config.EnvVar(k), k)
		}
	}

	c, err := config.Load(&config.Options{File: path, NoDotEnv: true, LookupEnv: env{}.lookup})
	if err != nil {
		t.Fatal(err)
	}
	def, err := config.Load(&config.Options{NoDotEnv: true, LookupEnv: env{}.lookup})
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range c.Entries() {
		if d := def.Entries()[i]; e.Value != d.Value {
			t.Errorf("%s: example has %q, default is %q", e.Key, e.Value, d.Value)
		}
	}
}
