package hybrid_test

import (
	"strings"
	"testing"

	"github.com/maftia/maftia/sim"
	"github.com/maftia/maftia/sim/simtest"
	"github.com/maftia/maftia/sim/suites"
)

func campaign(t testing.TB, name, broken string, sizes []sim.Size, seeds int) *sim.Campaign {
	s, err := suites.Get(name, suites.Options{Broken: broken})
	if err != nil {
		t.Fatal(err)
	}
	return &sim.Campaign{
		Suite:      s,
		NewSuite:   func() *sim.Suite { s, _ := suites.Get(name, suites.Options{Broken: broken}); return s },
		Sizes:      sizes,
		Behaviours: append(sim.AllBehaviours(), s.Attacks...),
		Seeds:      seeds,
	}
}

var rmSizes = []sim.Size{{N: 3, F: 1}, {N: 4, F: 2}}

// BRM-T with f = n−2 Byzantine replicas of every behaviour (equivocating
// and withholding senders, replicas proposing wrong hashes to the TTCB)
// under the adversarial scheduler: agreement (same message or none),
// integrity, validity for correct senders and totality.
func TestRMulticastPropertiesUnderByzantineReplicas(t *testing.T) {
	sum := simtest.Run(t, campaign(t, "hybrid-rmcast", "", rmSizes, simtest.Seeds(1200)))
	if sum != nil {
		t.Logf("%d steps, %d messages, max %d packets in flight", sum.Steps, sum.Messages, sum.MaxPending)
	}
}

// The checker has teeth: delivering the payload message without waiting
// for the TTCB's agreement on its hash breaks agreement under an
// equivocating sender.
func TestSimulatorCatchesRMulticastDeliveringOnData(t *testing.T) {
	cp := campaign(t, "hybrid-rmcast", "deliver-on-data", rmSizes, 200)
	cp.Behaviours = []sim.Behaviour{sim.Equivocate{}}
	sum := cp.Run()
	if sum.Violations == 0 {
		t.Fatalf("broken BRM-T passed %d schedules", sum.Schedules)
	}
	f := sum.Failures[0]
	if !strings.Contains(strings.Join(f.Violations, "\n"), "agreement") || !strings.Contains(f.Trace, "DELIVER") {
		t.Fatalf("failure lacks an agreement violation or a trace: %v", f.Violations)
	}
	t.Logf("broken variant caught: %s; first failing seed %d", sum, f.Seed)
}
