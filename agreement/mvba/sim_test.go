package mvba_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/maftia/maftia/sim"
	"github.com/maftia/maftia/sim/simtest"
	"github.com/maftia/maftia/sim/suites"
)

func mvbaCampaign(s *suites.MVBASuite, seeds int) *sim.Campaign {
	sizes := []sim.Size{{N: 4, F: 1}, {N: 7, F: 2}}
	if simtest.Seeds(0) > 0 {
		sizes = append(sizes, sim.Size{N: 10, F: 3})
	}
	return &sim.Campaign{Suite: s.Suite, Sizes: sizes, Behaviours: suites.MVBABehaviours(), Seeds: seeds}
}

// Agreement, external validity, integrity (a correct proposer's value is
// decided only as proposed) and termination (decide and halt) of MVBA with
// f Byzantine replicas of every simulator behaviour plus invalid proposers,
// n ∈ {4, 7} (and 10 with MAFTIA_SIM_SEEDS).
//
// Both ways of drawing: mvba.DefaultParams' optimistic randomness (first
// candidate and first ABA coins fixed) and a threshold coin for every
// candidate and every ABA round (suites.Options.AllCoins).
func TestMVBAPropertiesUnderByzantineReplicas(t *testing.T) {
	for _, all := range []bool{false, true} {
		name, seeds := "optimistic", 1000
		if all {
			name, seeds = "all-coins", 500
		}
		t.Run(name, func(t *testing.T) { mvbaProperties(t, suites.Options{AllCoins: all}, seeds) })
	}
}

func mvbaProperties(t *testing.T, o suites.Options, seeds int) {
	s := suites.MVBA(o)
	iters := map[*sim.Cluster]uint64{}
	check := s.Check
	s.Check = func(c *sim.Cluster) []string {
		var w uint64
		for _, ds := range suites.MVBADecisions(c) {
			w = max(w, ds[0].Iteration)
		}
		iters[c] = w
		return check(c)
	}
	cp := mvbaCampaign(s, simtest.Seeds(seeds))
	if simtest.Run(t, cp) == nil {
		return
	}
	hist := map[uint64]int{}
	sum := 0
	for _, w := range iters {
		hist[w]++
		sum += int(w)
	}
	keys := make([]uint64, 0, len(hist))
	for k := range hist {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "iterations (candidates tried) to decide over %d runs: mean %.2f; histogram", len(iters), float64(sum)/float64(max(len(iters), 1)))
	for _, k := range keys {
		fmt.Fprintf(&b, " %d:%d", k, hist[k])
	}
	t.Log(b.String())
}

// The checkers have teeth: an MVBA that does not check the validity of the
// proposals it receives decides invalid values of Byzantine proposers.
func TestSimulatorCatchesMVBAWithoutValidityCheck(t *testing.T) {
	cp := mvbaCampaign(suites.MVBA(suites.Options{Broken: "accept-invalid"}), 150)
	cp.Behaviours = []sim.Behaviour{suites.MVBAInvalidProposer{}}
	sum := cp.Run()
	if sum.Violations == 0 {
		t.Fatalf("broken MVBA passed %d schedules", sum.Schedules)
	}
	f := sum.Failures[0]
	if !strings.Contains(strings.Join(f.Violations, "\n"), "external validity") {
		t.Fatalf("no external-validity violation: %v", f.Violations)
	}
	t.Logf("accept-invalid caught: %s; first failing seed %d: %v", sum, f.Seed, f.Violations)
}
