package redistest_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker/redis/redistest"
)

// A test of your own code against a throwaway Redis. Every key goes under srv.Namespace.
// (Examples cannot receive a *testing.T; in a _test.go file this is a TestXxx function.)
func ExampleStart() {
	testGreeting := func(t *testing.T) {
		srv := redistest.Start(t) // container, redis-server process or REDIS_URL; skips if none
		rdb := srv.Client(t)      // closed when the test ends
		key := srv.Key("greeting")
		if err := rdb.Set(t.Context(), key, "hello", time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		if got := rdb.Get(t.Context(), key).Val(); got != "hello" {
			t.Fatalf("GET %s = %q", key, got)
		}
	}
	_ = testGreeting
}

// A restart that keeps every acknowledged write: AOF with fsync on every write.
func ExampleServer_Restart() {
	testSurvivesRestart := func(t *testing.T) {
		srv := redistest.Start(t, redistest.WithAOF())
		rdb := srv.Client(t) // follows the server to its new address after Start
		rdb.Set(t.Context(), srv.Key("k"), "v", 0)
		srv.Kill(t) // as a crash would
		srv.Start(t)
		if rdb.Get(t.Context(), srv.Key("k")).Val() != "v" {
			t.Fatal("lost a write")
		}
		_ = srv.URL() // re-read: the port may have changed
	}
	_ = testSurvivesRestart
}

func ExampleServer_Key() {
	srv := &redistest.Server{Namespace: "test-0123456789abcdef"}
	fmt.Println(srv.Key("{orchestrate}", "stream"))
	// Output: test-0123456789abcdef:{orchestrate}:stream
}

// A Redis Cluster of three masters; keys with one hash tag share a slot.
func ExampleStartCluster() {
	testCluster := func(t *testing.T) {
		c := redistest.StartCluster(t, 3)
		rdb := c.Client(t)
		rdb.Set(t.Context(), c.Key("{orchestrate}", "stream"), "x", 0)
	}
	_ = testCluster
}

// TLS with a generated CA: rediss:// URLs verify the server against CAFile.
func ExampleStartTLS() {
	testTLS := func(t *testing.T) {
		s := redistest.StartTLS(t)
		t.Setenv("REDIS_URL", s.TLSURL)
		t.Setenv("CONVEYOR_TLS_CA_FILE", s.CAFile) // for code that loads conveyor's config
		if err := s.Client(t).Ping(t.Context()).Err(); err != nil {
			t.Fatal(err)
		}
	}
	_ = testTLS
}
