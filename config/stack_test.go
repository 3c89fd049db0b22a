package config_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/config"
	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/middleware"
)

func TestRateLimitRules(t *testing.T) {
	c, err := config.Load(&config.Options{NoDotEnv: true, LookupEnv: env{
		// Each tenant 1 job at once (a very slow refill), and the llm
		// operation 2 at once over all tenants.
		"CONVEYOR_RATELIMIT_RULES":  "tenant=* rate=0.001 burst=1; operation=llm rate=0.001 burst=2",
		"CONVEYOR_BREAKER_FAILURES": "0",
	}.lookup})
	if err != nil {
		t.Fatal(err)
	}
	ran := 0
	h := middleware.Default(c.MiddlewareOptions(nil, nil, nil))(job.HandlerFunc(func(context.Context, *job.Job) error {
		ran++
		return nil
	}))
	tests := []struct {
		name, topic, tenant string
		limited             bool
	}{
		{"first job of tenant a", "ingest", "a", false},
		{"second job of tenant a", "ingest", "a", true},
		{"tenant b has its own bucket", "llm", "b", false},
		{"no tenant: only the llm rule applies", "llm", "", false},
		{"llm bucket empty now", "llm", "", true},
		{"no rule matches", "ingest", "", false},
	}
	for _, tt := range tests {
		j := &job.Job{ID: tt.name, Topic: tt.topic, Attempt: 1, Headers: map[string]string{}}
		if tt.tenant != "" {
			j.Headers["tenant"] = tt.tenant
		}
		before := ran
		err := h.ProcessJob(context.Background(), j)
		limited := errors.Is(err, middleware.ErrRateLimited)
		if o, _ := job.Classify(err); limited && o != job.OutcomeSnooze {
			t.Errorf("%s: a limited job must be snoozed, got %v", tt.name, o)
		}
		if limited != tt.limited || (ran > before) == tt.limited {
			t.Errorf("%s: limited = %v (err %v, ran %v), want limited %v", tt.name, limited, err, ran > before, tt.limited)
		}
	}
}

func TestRetryPolicyFromConfig(t *testing.T) {
	c, err := config.Load(&config.Options{NoDotEnv: true, LookupEnv: env{
		"CONVEYOR_RETRY_SCHEDULE":     "2s,7s",
		"CONVEYOR_RETRY_MAX_ATTEMPTS": "3",
		"CONVEYOR_RETRY_JITTER":       "0",
		"CONVEYOR_BREAKER_FAILURES":   "0",
	}.lookup})
	if err != nil {
		t.Fatal(err)
	}
	fail := job.HandlerFunc(func(context.Context, *job.Job) error { return errors.New("boom") })
	h := middleware.Default(c.MiddlewareOptions(nil, nil, nil))(fail)
	for attempt, want := range map[int]job.Outcome{1: job.OutcomeRetry, 2: job.OutcomeRetry, 3: job.OutcomeDeadLetter} {
		o, d := job.Classify(h.ProcessJob(context.Background(), &job.Job{ID: "x", Topic: "t", Attempt: attempt}))
		if o != want {
			t.Errorf("attempt %d: outcome %v, want %v", attempt, o, want)
		}
		if wantD := map[int]time.Duration{1: 2 * time.Second, 2: 7 * time.Second}[attempt]; o == job.OutcomeRetry && d != wantD {
			t.Errorf("attempt %d: delay %v, want %v", attempt, d, wantD)
		}
	}
}
