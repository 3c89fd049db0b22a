package reliability

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain runs the worker program instead of the tests when the binary was
// started as a worker subprocess (see worker_test.go), and otherwise checks
// that no test leaks a goroutine.
func TestMain(m *testing.M) {
	if os.Getenv(envWorker) == "1" {
		os.Exit(workerMain())
	}
	goleak.VerifyTestMain(m)
}
