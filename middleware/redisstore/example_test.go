package redisstore_test

import (
	"log"
	"os"

	"github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/middleware"
	"github.com/conveyor-jobs/conveyor/middleware/redisstore"
)

// Five "llm" jobs per second per tenant, bursts of ten, for every worker that
// shares this Redis and namespace.
func Example() {
	opts, err := redis.ParseURL(os.Getenv("REDIS_URL"))
	if err != nil {
		log.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()

	store, err := redisstore.New(rdb, &redisstore.Options{Namespace: "conveyor"})
	if err != nil {
		log.Fatal(err)
	}
	mux := job.NewMux()
	mux.Use(middleware.RateLimit(&middleware.RateLimitOptions{
		Key:    middleware.ByTenantOperation(),
		Limits: map[string]middleware.Limit{"acme:llm": middleware.PerSecond(5, 10)},
		Limit:  middleware.PerSecond(50, 50), // every other tenant and operation
		Store:  store,
	}))
	// mux.Handle(...), then serve the mux.
}
