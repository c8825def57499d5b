package abc_test

import (
	"testing"

	"github.com/maftia/maftia/sim"
	"github.com/maftia/maftia/sim/simtest"
	"github.com/maftia/maftia/sim/suites"
)

// Agreement, total order, integrity and validity (every request given to
// f+1 correct replicas is delivered) with f Byzantine replicas of every
// behaviour plus the censor and forger attacks, n ∈ {4, 7}.
func TestABCPropertiesUnderByzantineReplicas(t *testing.T) {
	s := suites.ABC(suites.Options{})
	cp := &sim.Campaign{
		Suite:      s.Suite,
		Sizes:      []sim.Size{{N: 4, F: 1}, {N: 7, F: 2}},
		Behaviours: append(sim.AllBehaviours(), s.Attacks...),
		Seeds:      simtest.Seeds(1000),
	}
	simtest.Run(t, cp)
}
