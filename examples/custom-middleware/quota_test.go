package main

import (
	"context"
	"errors"
	"testing"

	"github.com/conveyor-jobs/conveyor/job"
)

func TestTenantQuota(t *testing.T) {
	h := TenantQuota(map[string]int{"acme": 2})(job.HandlerFunc(func(context.Context, *job.Job) error { return nil }))
	tests := []struct {
		id, tenant string
		want       error // nil: ran
	}{
		{"1", "acme", nil},
		{"2", "acme", nil},
		{"1", "acme", nil}, // a retry of a counted job
		{"3", "acme", ErrOverQuota},
		{"4", "globex", ErrOverQuota}, // no quota: zero jobs
		{"5", "", ErrNoTenant},
	}
	for _, tt := range tests {
		j := &job.Job{ID: tt.id, Topic: "agent", Headers: map[string]string{"tenant": tt.tenant}}
		err := h.ProcessJob(context.Background(), j)
		if tt.want == nil {
			if err != nil {
				t.Errorf("job %s of %q: %v, want it to run", tt.id, tt.tenant, err)
			}
			continue
		}
		if o, _ := job.Classify(err); o != job.OutcomeDeadLetter || !errors.Is(err, tt.want) {
			t.Errorf("job %s of %q: %v %v, want a permanent %v", tt.id, tt.tenant, o, err, tt.want)
		}
	}
}
