package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/conveyor-jobs/conveyor/internal/bench"
)

func main() {
	n := flag.Int("n", 100000, "")
	runs := flag.Int("runs", 1, "")
	sc := flag.String("s", "", "")
	conc := flag.Int("c", 0, "")
	cpu := flag.String("cpu", "", "")
	js := flag.Bool("json", false, "")
	flag.Parse()
	rep, err := bench.Run(context.Background(), bench.Config{N: *n, Runs: *runs, Scenarios: bench.ParseScenarios(*sc), Concurrency: *conc, Progress: os.Stderr, CPUProfile: *cpu})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if *js {
		rep.WriteJSON(os.Stdout)
	} else {
		rep.WriteTable(os.Stdout)
	}
}
