package rbc_test

import (
	"strings"
	"testing"

	"github.com/maftia/maftia/sim"
	"github.com/maftia/maftia/sim/simtest"
	"github.com/maftia/maftia/sim/suites"
)

func rbcCampaign(t testing.TB, broken string, seeds int) *sim.Campaign {
	s, err := suites.Get("rbc", suites.Options{Broken: broken})
	if err != nil {
		t.Fatal(err)
	}
	return &sim.Campaign{
		Suite:      s,
		NewSuite:   func() *sim.Suite { s, _ := suites.Get("rbc", suites.Options{Broken: broken}); return s },
		Sizes:      []sim.Size{{N: 4, F: 1}, {N: 7, F: 2}, {N: 10, F: 3}},
		Behaviours: sim.AllBehaviours(),
		Seeds:      seeds,
	}
}

// Validity, agreement, integrity and totality of Bracha's broadcast with f
// Byzantine replicas of every behaviour (an equivocating sender among them)
// under the adversarial scheduler, n ∈ {4, 7, 10}.
func TestRBCPropertiesUnderByzantineReplicas(t *testing.T) {
	sum := simtest.Run(t, rbcCampaign(t, "", simtest.Seeds(2100)))
	if sum != nil {
		t.Logf("%d steps, %d messages, max %d packets in flight", sum.Steps, sum.Messages, sum.MaxPending)
	}
}

// The checkers have teeth: an RBC that delivers on the first ECHO is caught
// with a failing seed and a readable trace.
func TestSimulatorCatchesBrokenRBC(t *testing.T) {
	cp := rbcCampaign(t, "deliver-on-first-echo", 200)
	cp.Behaviours = []sim.Behaviour{sim.Equivocate{}}
	sum := cp.Run()
	if sum.Violations == 0 {
		t.Fatalf("broken RBC passed %d schedules", sum.Schedules)
	}
	f := sum.Failures[0]
	if !strings.Contains(strings.Join(f.Violations, "\n"), "agreement") || !strings.Contains(f.Trace, "DELIVER") {
		t.Fatalf("failure lacks an agreement violation or a trace: %v\n%s", f.Violations, f.Trace)
	}
	t.Logf("broken variant caught: %s; first failing seed %d (%d violations)", sum, f.Seed, len(f.Violations))
}

// Same seed, same run: byte-identical traces.
func TestSameSeedSameTrace(t *testing.T) {
	cp := rbcCampaign(t, "", 1)
	for seed := uint64(0); seed < 20; seed++ {
		cfg := cp.ConfigFor(seed)
		cfg.Trace = true
		a, b := sim.Run(cp.Suite, cfg), sim.Run(cp.Suite, cfg)
		if a.Trace != b.Trace || a.Trace == "" {
			t.Fatalf("seed %d: traces differ (%d vs %d bytes)", seed, len(a.Trace), len(b.Trace))
		}
	}
}
