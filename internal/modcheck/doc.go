// Package modcheck holds a test of what conveyor's root module costs an application: it
// tidies a throwaway application module that imports the root packages and checks that
// its go.mod and go.sum stay small, and that only the harness in
// github.com/conveyor-jobs/conveyor/broker/redis/redistest, a module of its own, brings a
// container runtime, and only to an application whose tests import it.
package modcheck
