package main

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/middleware"
)

// ErrOverQuota is the cause of a job refused by [TenantQuota].
var ErrOverQuota = errors.New("tenant over quota")

// ErrNoTenant is the cause of a job refused by [TenantQuota] because it names
// no tenant.
var ErrNoTenant = errors.New("job has no tenant header")

// TenantQuota is a custom middleware: each tenant (the "tenant" header) may
// run at most quota[tenant] distinct jobs; a retry of a job already counted is
// not counted again. A job over quota, or without a tenant, fails permanently:
// retrying cannot help, so it goes to the dead-letter topic at once, where an
// operator (or a handler) can replay it after raising the quota.
//
// It is a job.Middleware like any other: a func(job.Handler) job.Handler
// that returns an outcome as an error and never sleeps. A real quota would
// live in a database; this one is in memory and safe for concurrent use.
func TenantQuota(quota map[string]int) job.Middleware {
	var (
		mu   sync.Mutex
		seen = map[string]map[string]bool{} // tenant → job IDs counted
	)
	return func(next job.Handler) job.Handler {
		return job.HandlerFunc(func(ctx context.Context, j *job.Job) error {
			tenant := j.Header(middleware.TenantHeader)
			if tenant == "" {
				return job.Permanent(ErrNoTenant)
			}
			mu.Lock()
			ids := seen[tenant]
			if ids == nil {
				ids = map[string]bool{}
				seen[tenant] = ids
			}
			if !ids[j.ID] && len(ids) >= quota[tenant] {
				mu.Unlock()
				return job.Permanent(fmt.Errorf("%w: %s may run %d jobs", ErrOverQuota, tenant, quota[tenant]))
			}
			ids[j.ID] = true
			mu.Unlock()
			return next.ProcessJob(ctx, j)
		})
	}
}
