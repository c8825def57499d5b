// Package instbench is the shared loop of the agreement benchmarks
// (BenchmarkABAInstance, BenchmarkMVBAInstance): whole instances in the
// simulator, with messages, bytes, threshold-coin work and the instance's
// own progress measure (rounds or iterations) reported per instance. Only
// tests import it.
package instbench

import (
	"testing"

	"github.com/maftia/maftia/agreement/internal/tcoin"
	"github.com/maftia/maftia/sim"
)

// Run runs b.N instances, seed 0, 1, …: one(seed) runs one and returns its
// result, the coin work of its correct replicas and the largest progress
// (decision round or iteration) among them. unit names the progress
// metric ("rounds", "iters").
func Run(b *testing.B, unit string, one func(seed uint64) (*sim.Result, tcoin.Ops, uint64)) {
	var msgs, bytes, progress uint64
	var ops tcoin.Ops
	seed := uint64(0)
	for b.Loop() {
		res, o, w := one(seed)
		if !res.OK() {
			b.Fatalf("seed %d: %v", seed, res.Violations)
		}
		seed++
		msgs += res.Stats.Messages
		bytes += res.Stats.Bytes
		ops.Add(o)
		progress += w
	}
	k := float64(b.N)
	b.ReportMetric(float64(msgs)/k, "msgs/op")
	b.ReportMetric(float64(bytes)/k, "wireB/op")
	b.ReportMetric(float64(progress)/k, unit+"/op")
	b.ReportMetric(float64(ops.SharesSigned)/k, "signs/op")
	b.ReportMetric(float64(ops.Combines)/k, "combines/op")
	b.ReportMetric(float64(ops.SharesVerified)/k, "verifies/op")
}
