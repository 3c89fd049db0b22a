package main

import (
	"strings"
	"testing"
)

// TestInvalidURLIsConfigError checks that a Redis URL the configuration
// accepts but the Redis broker rejects as malformed (a unix:// socket URL)
// is a configuration error, exit 2, for every command that opens the
// broker: the message is the broker's, password redacted, without a hint
// to read the command's help.
func TestInvalidURLIsConfigError(t *testing.T) {
	const password = "s3cret-pw"
	e := env{"REDIS_URL": "unix://default:" + password + "@/tmp/conveyor-test.sock"}
	const want = "conveyor: conveyor/redis: invalid Redis URL unix://default:xxxxx@/tmp/conveyor-test.sock: scheme must be redis:// or rediss://\n"
	for _, args := range [][]string{
		{"health"},
		{"worker", "--topic", "t"},
		{"produce", "--topic", "t", "--payload", "{}"},
		{"consume", "--topic", "t"},
		{"dlq", "list", "--topic", "t"},
		{"trim", "--topic", "t", "--maxlen", "1", "--dry-run"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			r := mustRun(t, exitUsage, invocation{env: e}, args...)
			if r.stderr != want {
				t.Errorf("stderr = %q, want %q", r.stderr, want)
			}
		})
	}
}
