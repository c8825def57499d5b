package abc_test

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/maftia/maftia/core"
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

// Proofs are interpolated unchecked and checked in one batch per epoch
// (tsig.VerifyBatch). A replica whose STORED shares carry a wrong point
// under a correct header (the bad-point attack: only the pairing check can
// tell) makes some interpolated proofs wrong; the batched check must
// catch them, name that replica (invalid-proof evidence) and recombine
// from the good shares, and every request is still delivered everywhere.
func TestBatchedProofCheckNamesBadShares(t *testing.T) {
	g := core.MustGroup(4, 1, core.Async)
	named, batches := 0, uint64(0)
	seeds := simtest.Seeds(20)
	for seed := uint64(0); seed < uint64(seeds); seed++ {
		s := suites.ABC(suites.Options{})
		var bad sim.Behaviour
		for _, b := range s.Attacks {
			if b.Name() == "bad-point" {
				bad = b
			}
		}
		c, err := sim.NewCluster(s.Suite, g, seed, map[core.NodeID]sim.Behaviour{4: bad}, false)
		if err != nil {
			t.Fatal(err)
		}
		s.Start(c)
		rng := rand.New(rand.NewPCG(seed, 3))
		for i := 0; len(c.Pending()) > 0 && i < 400_000; i++ {
			c.Deliver(rng.IntN(len(c.Pending())))
		}
		if c.Err() != nil {
			t.Fatalf("seed %d: %v", seed, c.Err())
		}
		if v := s.Check(c); len(v) > 0 || !s.Terminated(c) {
			t.Fatalf("seed %d: violations %v, terminated %v", seed, v, s.Terminated(c))
		}
		for _, e := range c.Evidence() {
			if c.IsCorrect(e.Accused) {
				t.Fatalf("seed %d: correct replica accused: %+v", seed, e)
			}
			if e.Accused == 4 && e.Kind == core.InvalidProof {
				named++
			}
		}
		batches += s.Core(1).Ops().ProofBatches
	}
	t.Logf("%d schedules: %d invalid-proof accusations of the bad-point replica, %d batched proof checks at replica 1", seeds, named, batches)
	if named == 0 || batches == 0 {
		t.Fatal("the bad shares were never caught by the batched check")
	}
}
