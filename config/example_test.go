package config_test

import (
	"errors"
	"fmt"

	"github.com/conveyor-jobs/conveyor/config"
)

func ExampleLoad() {
	environment := map[string]string{
		"REDIS_URL":                   "redis://default:s3cret@redis.example.com:6379/0",
		"REDIS_NAMESPACE":             "agentic-dev",
		"CONVEYOR_WORKER_CONCURRENCY": "4",
	}
	cfg, err := config.Load(&config.Options{
		NoDotEnv:  true,
		LookupEnv: func(k string) (string, bool) { v, ok := environment[k]; return v, ok },
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(cfg.Redis.Namespace, cfg.Worker.Concurrency, cfg.Retry.Schedule)
	fmt.Println(cfg.Source("redis.namespace"), "/", cfg.Source("redis.group"))
	// Output:
	// agentic-dev 4 [5s 15s 1m0s]
	// env REDIS_NAMESPACE / default
}

func ExampleLoad_invalid() {
	environment := map[string]string{"CONVEYOR_REDIS_LEASE": "30"}
	_, err := config.Load(&config.Options{
		NoDotEnv:  true,
		LookupEnv: func(k string) (string, bool) { v, ok := environment[k]; return v, ok },
	})
	fmt.Println(err)
	// Output:
	// config: redis.lease = "30" (from env CONVEYOR_REDIS_LEASE): not a duration: use a number with a unit, such as "30s", "1m30s" or "500ms"
}

func ExampleDiagnose() {
	err := errors.New("NOAUTH Authentication required.")
	fmt.Println(config.Diagnose(err, "redis://redis.example.com:6379/0"))
	// Output: the server requires a password: put it in REDIS_URL as redis://default:PASSWORD@redis.example.com:6379/0 (or rediss:// for TLS)
}

func ExampleCheckURL() {
	fmt.Println(config.CheckURL("redis://default:p@ss#word@redis.example.com:6379/0"))
	// Output: special characters in the user name or password of a URL must be URL-encoded: in the password, write "@" as %40, "#" as %23 (keep the other characters as they are)
}
