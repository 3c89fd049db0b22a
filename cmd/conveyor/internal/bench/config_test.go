package bench

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestConfigDefaults(t *testing.T) {
	c, err := Config{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.N != DefaultN || c.Concurrency != DefaultConcurrency || c.PayloadSize != DefaultPayloadSize ||
		c.Rate != DefaultRate || c.Runs != DefaultRuns || c.LatencyJobs != DefaultLatencyJobs || !slices.Equal(c.Scenarios, DefaultScenarios) {
		t.Errorf("defaults %+v", c)
	}
}

func TestConfigScenarios(t *testing.T) {
	c, err := Config{Scenarios: ParseScenarios(" memory, floor ,,floor")}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{ScenarioFloor, ScenarioMemory}; !slices.Equal(c.Scenarios, want) {
		t.Errorf("scenarios %v, want %v (run order, no duplicates)", c.Scenarios, want)
	}
	if c.needsRedis() != true {
		t.Error("floor needs Redis")
	}
	c, _ = Config{Scenarios: []string{ScenarioMemory}}.withDefaults()
	if c.needsRedis() {
		t.Error("memory alone needs no Redis")
	}
}

func TestConfigInvalid(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"negative n", Config{N: -1}, "-n -1"},
		{"negative concurrency", Config{Concurrency: -2}, "--concurrency -2"},
		{"payload too small", Config{PayloadSize: 29}, "--payload-size 29"},
		{"negative rate", Config{Rate: -5}, "--rate -5"},
		{"negative runs", Config{Runs: -1}, "--runs -1"},
		{"negative partitions", Config{Partitions: -1}, "--partitions -1"},
		{"too many partitions", Config{Partitions: 5000}, "--partitions 5000"},
		{"unknown scenario", Config{Scenarios: []string{"floor", "warp"}}, `unknown scenario "warp"`},
		{"empty scenario list", Config{Scenarios: []string{" "}}, "no scenario selected"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.cfg.withDefaults()
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want ErrInvalidConfig mentioning %q", err, tc.want)
			}
		})
	}
}
