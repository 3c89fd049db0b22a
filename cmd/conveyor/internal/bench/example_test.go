package bench_test

import (
	"context"
	"fmt"
	"os"

	"github.com/conveyor-jobs/conveyor/cmd/conveyor/internal/bench"
)

func ExampleParseScenarios() {
	fmt.Println(bench.ParseScenarios("floor, process,,latency"))
	// Output: [floor process latency]
}

// Run the memory scenario (no Redis needed) and print the table.
func ExampleRun() {
	rep, err := bench.Run(context.Background(), bench.Config{
		N:         10000,
		Runs:      1,
		Scenarios: []string{bench.ScenarioMemory},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = rep.WriteTable(os.Stdout)
}
