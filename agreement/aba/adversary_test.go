package aba_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/maftia/maftia/agreement/aba"
	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/sim"
	"github.com/maftia/maftia/sim/simtest"
	"github.com/maftia/maftia/sim/suites"
	"github.com/maftia/maftia/wire"
)

// splitScheduler is the adversary of ATTACKS.md row 4: it reads every
// message (not the coin's value, which it cannot compute before f+1
// shares) and schedules so as to keep the correct replicas split. Replicas
// are assigned a side (id mod 2); BVAL, AUX and CONF carrying a replica's
// own side's value reach it first, the other side's last; coin shares are
// delivered only when nothing else is pending, so the coin is revealed as
// late as the protocol allows; TERMs come last of all. The only constraint
// is eventual delivery: a packet that waited for more than maxAge later
// sends is delivered first (without it the scheduler would starve TERMs
// forever, which no asynchronous protocol can survive).
func splitScheduler(rng *rand.Rand, pending []*sim.Packet, maxAge uint64) int {
	newest := uint64(0)
	for _, p := range pending {
		newest = max(newest, p.ID)
	}
	for i, p := range pending {
		if p.ID+maxAge < newest {
			return i
		}
	}
	best, bestRank := -1, 99
	ties := 0
	for i, p := range pending {
		rank := 3 // garbage, other values
		if m, err := aba.Decode(p.Payload); err == nil {
			side := uint32(p.To) % 2
			switch m.Kind {
			case wire.ABA_BVAL, wire.ABA_AUX:
				rank = 1
				if m.Value == side {
					rank = 0
				}
			case wire.ABA_CONF:
				rank = 1
				if m.Value == 1<<side {
					rank = 0
				}
			case wire.ABA_COIN:
				rank = 4
			case wire.ABA_TERM:
				rank = 5
			}
		}
		switch {
		case rank < bestRank:
			best, bestRank, ties = i, rank, 1
		case rank == bestRank:
			ties++
			if rng.IntN(ties) == 0 {
				best = i
			}
		}
	}
	return best
}

// Termination, agreement and validity under the content-reading split
// scheduler, with inputs split by side and the ABA liar (conflicting votes,
// forged coin shares) as the Byzantine replicas, n ∈ {4, 7}.
// With the first two coins fixed (as mvba runs its ABAs) the scheduler
// knows them in advance; termination must still hold.
func TestABATerminatesUnderContentAwareScheduler(t *testing.T) {
	for _, fixed := range [][]bool{nil, mvbaCoins} {
		t.Run(fmt.Sprintf("fixed=%v", fixed), func(t *testing.T) { contentAwareCampaign(t, fixed) })
	}
}

func contentAwareCampaign(t *testing.T, fixed []bool) {
	seeds := simtest.Seeds(100)
	worst, sum := uint64(0), uint64(0)
	for seed := 0; seed < seeds; seed++ {
		n, f := 4, 1
		if seed%2 == 1 {
			n, f = 7, 2
		}
		s := suites.ABA(suites.Options{ABAFixedCoins: fixed})
		g := core.MustGroup(n, f, core.Async)
		rng := rand.New(rand.NewPCG(uint64(seed), 4))
		byz := map[core.NodeID]sim.Behaviour{}
		for _, i := range rng.Perm(n)[:f] {
			byz[core.NodeID(i+1)] = suites.ABALiar{}
		}
		c, err := sim.NewCluster(s.Suite, g, uint64(seed), byz, false)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range g.Members() {
			c.Input(id, core.Input{Instance: suites.ABAInstance, Value: id%2 == 1})
		}
		steps := 0
		for ; len(c.Pending()) > 0 && steps < 200_000; steps++ {
			c.Deliver(splitScheduler(rng, c.Pending(), uint64(8*n*n)))
		}
		if v := s.Check(c); len(v) > 0 {
			t.Fatalf("seed %d: %v", seed, v)
		}
		if !s.Terminated(c) {
			t.Fatalf("seed %d: correct replicas did not decide and halt (%d steps, %d pending)", seed, steps, len(c.Pending()))
		}
		var w uint64
		for _, ds := range suites.ABADecisions(c) {
			w = max(w, ds[0].Round)
		}
		worst, sum = max(worst, w), sum+w
	}
	t.Logf("%d schedules, 0 violations (split scheduler): rounds to decide mean %.2f, max %d", seeds, float64(sum)/float64(seeds), worst)
}
