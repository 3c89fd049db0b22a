// Package config loads conveyor's configuration: built-in defaults, then a
// YAML file, then .env in the working directory, then the environment, each
// layer overriding the one before.
//
// # Keys and variables
//
// Every setting has a key in the file and an environment variable. The
// variables operators already use keep their names (REDIS_URL,
// REDIS_NAMESPACE, REDIS_CONSUMER, QUEUE_BACKEND); the others are CONVEYOR_
// followed by the key in upper case, dots as underscores:
// worker.concurrency is CONVEYOR_WORKER_CONCURRENCY. config.yaml.example at
// the repository root documents every key.
//
// # Errors
//
// Unknown keys in the file, values that do not decode and values that do not
// validate are errors matching [ErrInvalid]; each names the key, the value
// and where it came from (the file, .env or the variable). Passwords in
// REDIS_URL never appear in errors or in [Config.Entries].
//
// # Connection problems
//
// [Diagnose] turns an error met while connecting to Redis into advice:
// rediss:// on a plain port, redis:// on a TLS port, a wrong password, an
// untrusted certificate, a host that does not resolve, and so on.
package config
