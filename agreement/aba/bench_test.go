package aba_test

import (
	"fmt"
	"testing"

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
			var msgs, bytes, rounds uint64
			var ops tcoin.Ops
			seed := uint64(0)
			for b.Loop() {
				s := suites.ABA(suites.Options{})
				res := sim.Run(s.Suite, sim.Config{N: n, F: f, Seed: seed, NoFaults: true})
				seed++
				if !res.OK() {
					b.Fatalf("seed %d: %v", seed-1, res.Violations)
				}
				msgs += res.Stats.Messages
				bytes += res.Stats.Bytes
				var w uint64
				for _, id := range res.Cluster.Correct() {
					ops.Add(s.Core(id).Ops())
					if d, ok := s.Core(id).Decided(); ok {
						w = max(w, d.Round)
					}
				}
				rounds += w
			}
			k := float64(b.N)
			b.ReportMetric(float64(msgs)/k, "msgs/op")
			b.ReportMetric(float64(bytes)/k, "wireB/op")
			b.ReportMetric(float64(rounds)/k, "rounds/op")
			b.ReportMetric(float64(ops.SharesSigned)/k, "signs/op")
			b.ReportMetric(float64(ops.Combines)/k, "combines/op")
			b.ReportMetric(float64(ops.SharesVerified)/k, "verifies/op")
		})
	}
}
