package mvba_test

import (
	"fmt"
	"testing"

	"github.com/maftia/maftia/agreement/internal/instbench"
	"github.com/maftia/maftia/agreement/internal/tcoin"
	"github.com/maftia/maftia/sim"
	"github.com/maftia/maftia/sim/suites"
)

// BenchmarkMVBAInstance runs whole validated-agreement instances in the
// simulator (all replicas correct, random fair delivery, 64-byte
// proposals) and reports per instance, summed over the n replicas:
// messages, bytes, coin shares signed, combinations, individual share
// verifications (the ABAs' included) and iterations (candidates tried).
// Time per op includes dealing the coin key for the run. "optimistic" is
// mvba.DefaultParams (first candidate and first ABA coins fixed),
// "all-coins" draws every candidate and ABA coin by the threshold coin.
func BenchmarkMVBAInstance(b *testing.B) {
	for _, all := range []bool{false, true} {
		for _, n := range []int{4, 7, 16} {
			mode := "optimistic"
			if all {
				mode = "all-coins"
			}
			b.Run(fmt.Sprintf("%s/n=%d", mode, n), func(b *testing.B) { benchMVBA(b, n, all) })
		}
	}
}

func benchMVBA(b *testing.B, n int, all bool) {
	f := (n - 1) / 3
	instbench.Run(b, "iters", func(seed uint64) (*sim.Result, tcoin.Ops, uint64) {
		s := suites.MVBA(suites.Options{PayloadSize: 64, AllCoins: all})
		res := sim.Run(s.Suite, sim.Config{N: n, F: f, Seed: seed, NoFaults: true})
		var ops tcoin.Ops
		var w uint64
		for _, id := range res.Cluster.Correct() {
			ops.Add(s.Core(id).Ops())
			if d, ok := s.Core(id).Decided(); ok {
				w = max(w, d.Iteration)
			}
		}
		return res, ops, w
	})
}
