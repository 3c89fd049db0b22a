package main

import (
	"slices"
	"strings"
	"testing"
)

// TestUnknownTopic checks that every command given a topic the namespace
// holds no trace of fails (exit 1) saying so, with the close names it may
// have meant, instead of describing an empty topic; and that consume, which
// may wait for a producer about to start, only warns.
func TestUnknownTopic(t *testing.T) {
	e, _ := redisEnv(t)
	inv := invocation{env: e}
	mustRun(t, exitOK, inv, "produce", "--topic", "orchestrate", "--payload", `{}`)
	mustRun(t, exitOK, inv, "produce", "--topic", "orchestrator-v2", "--payload", `{}`)
	mustRun(t, exitOK, inv, "produce", "--topic", "billing", "--payload", `{}`)
	ns := e["REDIS_NAMESPACE"]
	want := "conveyor: namespace " + ns + " holds no topic orchestrat (did you mean orchestrate, orchestrator-v2?)"
	for _, args := range [][]string{
		{"health", "--topic", "orchestrat"},
		{"health", "--topic", "orchestrate", "--topic", "orchestrat", "--json"},
		{"dlq", "list", "--topic", "orchestrat"},
		{"dlq", "show", "--topic", "orchestrat", "--id", "0-1"},
		{"dlq", "replay", "--topic", "orchestrat", "--all"},
		{"dlq", "replay", "--topic", "orchestrat", "--all", "--dry-run"},
		{"dlq", "purge", "--topic", "orchestrat", "--id", "0-1"},
		{"dlq", "purge", "--topic", "orchestrat", "--all", "--yes"},
		{"trim", "--topic", "orchestrat", "--maxlen", "10"},
		{"trim", "--topic", "orchestrat", "--maxlen", "10", "--dry-run"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			r := mustRun(t, exitFail, inv, args...)
			if !strings.Contains(r.stderr, want) {
				t.Errorf("stderr does not contain %q:\n%s", want, r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout: %q, want nothing", r.stdout)
			}
		})
	}

	// A dead-letter topic exists when its origin does; a misspelt one is
	// suggested with its suffix.
	r := mustRun(t, exitFail, inv, "trim", "--topic", "biling.dlq", "--maxlen", "10")
	if !strings.Contains(r.stderr, "holds no topic biling.dlq (did you mean billing.dlq?)") {
		t.Errorf("trim of a misspelt dead-letter topic:\n%s", r.stderr)
	}
	mustRun(t, exitOK, inv, "trim", "--topic", "billing.dlq", "--maxlen", "10", "--include-unread")
	mustRun(t, exitOK, inv, "dlq", "list", "--topic", "billing.dlq")

	// Nothing close: no suggestion, a pointer to the listing.
	r = mustRun(t, exitFail, inv, "health", "--topic", "zzz")
	if strings.Contains(r.stderr, "did you mean") || !strings.Contains(r.stderr, "conveyor health lists the topics") {
		t.Errorf("health on a topic with no close name:\n%s", r.stderr)
	}

	// consume warns and waits; the warning names the close topics.
	r = mustRun(t, exitFail, inv, "consume", "--topic", "orchestrat", "--timeout", "100ms")
	if !strings.Contains(r.stderr, "warning: namespace "+ns+" holds no topic orchestrat (did you mean orchestrate, orchestrator-v2?); waiting for jobs on it anyway") ||
		!strings.Contains(r.stderr, "timed out") {
		t.Errorf("consume on an unknown topic:\n%s", r.stderr)
	}
	// An existing topic is no warning.
	r = mustRun(t, exitOK, inv, "consume", "--topic", "billing", "--timeout", "10s")
	if strings.Contains(r.stderr, "warning") {
		t.Errorf("consume on a known topic warns:\n%s", r.stderr)
	}
}

// TestUnknownTopicOtherNamespace checks that a topic missing from the
// namespace but present in another one on the same Redis is reported with
// that namespace.
func TestUnknownTopicOtherNamespace(t *testing.T) {
	e, _ := redisEnv(t)
	producer := e.with("REDIS_NAMESPACE", e["REDIS_NAMESPACE"]+"-prod")
	mustRun(t, exitOK, invocation{env: producer}, "produce", "--topic", "orchestrate", "--payload", `{}`)
	r := mustRun(t, exitFail, invocation{env: e}, "dlq", "list", "--topic", "orchestrate")
	if want := "namespace " + producer["REDIS_NAMESPACE"] + " holds it: do producer and worker use the same REDIS_NAMESPACE?"; !strings.Contains(r.stderr, want) {
		t.Errorf("stderr does not contain %q:\n%s", want, r.stderr)
	}
}

func TestNearNames(t *testing.T) {
	topics := []string{"orchestrate", "orchestrator-v2", "billing", "bill", "emails", "orc"}
	tests := []struct {
		name string
		want []string
	}{
		{"orchestrat", []string{"orchestrate", "orchestrator-v2"}},
		{"orchestrte", []string{"orchestrate"}},
		{"biling", []string{"billing"}},
		{"billing-eu", []string{"billing"}},
		{"email", []string{"emails"}},
		{"zzz", []string{}},
		{"or", []string{"orc"}},
	}
	for _, tt := range tests {
		if got := nearNames(tt.name, topics); !slices.Equal(got, tt.want) {
			t.Errorf("nearNames(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
}
