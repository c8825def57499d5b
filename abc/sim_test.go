package abc_test

import (
	"strings"
	"testing"

	"github.com/maftia/maftia/sim"
	"github.com/maftia/maftia/sim/simtest"
	"github.com/maftia/maftia/sim/suites"
)

func campaign(mk func() *suites.ABCSuite, seeds int) *sim.Campaign {
	s := mk()
	return &sim.Campaign{
		Suite:      s.Suite,
		NewSuite:   func() *sim.Suite { return mk().Suite },
		Sizes:      []sim.Size{{N: 4, F: 1}, {N: 7, F: 2}},
		Behaviours: append(sim.AllBehaviours(), s.Attacks...),
		Seeds:      seeds,
	}
}

// Agreement, total order, integrity and validity (every request given to
// f+1 correct replicas is delivered) with f Byzantine replicas of every
// behaviour plus the censor and forger attacks, n ∈ {4, 7}.
func TestABCPropertiesUnderByzantineReplicas(t *testing.T) {
	simtest.Run(t, campaign(func() *suites.ABCSuite { return suites.ABC(suites.Options{}) }, simtest.Seeds(1000)))
}

// The same properties in secure causal mode, with replicas that also
// withhold or corrupt their decryption shares; every request is delivered
// decrypted.
func TestSecureCausalABCPropertiesUnderByzantineReplicas(t *testing.T) {
	simtest.Run(t, campaign(func() *suites.ABCSuite { return suites.SCABC(suites.Options{}) }, simtest.Seeds(150)))
}

// The checkers have teeth: delivering each batch in reverse order at some
// replicas is caught as a total-order violation.
func TestSimulatorCatchesReorderingABC(t *testing.T) {
	cp := campaign(func() *suites.ABCSuite { return suites.ABC(suites.Options{Broken: "reorder"}) }, 20)
	cp.Behaviours = []sim.Behaviour{sim.Silent{}}
	sum := cp.Run()
	if sum.Violations == 0 || !strings.Contains(strings.Join(sum.Failures[0].Violations, "\n"), "total order") {
		t.Fatalf("reordering ABC not caught: %s", sum.Report(20))
	}
	t.Logf("broken variant caught: %s", sum)
}
