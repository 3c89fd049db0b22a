// Package redistest starts throwaway Redis servers for conveyor's own tests: redis-server
// processes, REDIS_URL, clusters and TLS servers, with nothing but go-redis and the
// standard library, so that the tests of conveyor's root module add no container runtime
// to the go.sum of an application that imports it.
//
// The public harness github.com/conveyor-jobs/conveyor/broker/redis/redistest, a module
// of its own, is this package plus the container path (testcontainers-go); its package
// documentation describes the paths, the options and the environment. Start here has no
// container path: when CONVEYOR_REDIS_HARNESS forces "container" it fails, so
// scripts/test runs the root module's tests with the process path instead.
package redistest
