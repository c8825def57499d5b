package aba_test

import (
	"fmt"
	"testing"

	"github.com/maftia/maftia/agreement/internal/instbench"
	"github.com/maftia/maftia/agreement/internal/tcoin"
	"github.com/maftia/maftia/sim"
	"github.com/maftia/maftia/sim/suites"
)

// BenchmarkABAInstance runs whole agreement instances in the simulator
// (all replicas correct, random fair delivery, inputs unanimous or split)
// and reports per instance, summed over the n replicas: messages, bytes,
// coin shares signed, combinations (one pairing check each), individual
// share verifications, and the largest decision round. Time per op
// includes dealing the coin key for the run.
func BenchmarkABAInstance(b *testing.B) {
	for _, n := range []int{4, 7, 16} {
		f := (n - 1) / 3
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			instbench.Run(b, "rounds", func(seed uint64) (*sim.Result, tcoin.Ops, uint64) {
				s := suites.ABA(suites.Options{})
				res := sim.Run(s.Suite, sim.Config{N: n, F: f, Seed: seed, NoFaults: true})
				var ops tcoin.Ops
				var w uint64
				for _, id := range res.Cluster.Correct() {
					ops.Add(s.Core(id).Ops())
					if d, ok := s.Core(id).Decided(); ok {
						w = max(w, d.Round)
					}
				}
				return res, ops, w
			})
		})
	}
}
