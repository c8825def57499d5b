// Package simtest runs simulator campaigns from Go tests: it prints
// "N schedules, 0 violations", honours MAFTIA_SIM_SEEDS (schedules per
// campaign) and MAFTIA_SIM_SEED (replay one seed with its trace), and
// fails the test with the failing seeds and their traces.
package simtest

import (
	"os"
	"strconv"
	"testing"

	"github.com/maftia/maftia/sim"
)

// Seeds returns MAFTIA_SIM_SEEDS if set, else def.
func Seeds(def int) int {
	if v, err := strconv.Atoi(os.Getenv("MAFTIA_SIM_SEEDS")); err == nil && v > 0 {
		return v
	}
	return def
}

// Run executes the campaign and fails t on any violation.
func Run(t testing.TB, cp *sim.Campaign) *sim.Summary {
	t.Helper()
	if v := os.Getenv("MAFTIA_SIM_SEED"); v != "" {
		seed, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("MAFTIA_SIM_SEED=%q: %v", v, err)
		}
		cfg := cp.ConfigFor(seed)
		cfg.Trace = true
		res := sim.Run(cp.Suite, cfg)
		t.Logf("replay of seed %d:\n%s\n%s", seed, res.Trace, res)
		if !res.OK() {
			t.Fatalf("seed %d violates: %v", seed, res.Violations)
		}
		return nil
	}
	sum := cp.Run()
	t.Log(sum.Report(0))
	if sum.Violations > 0 {
		t.Errorf("%s\n%s\nreproduce one seed with MAFTIA_SIM_SEED=<seed> go test -run %s -v", sum, sum.Report(60), t.Name())
	}
	return sum
}
