package avid_test

import (
	"fmt"
	"testing"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/sim"
	"github.com/maftia/maftia/sim/suites"
)

// BenchmarkBroadcast runs one broadcast instance (a correct sender, no
// faults) per op in the simulator and reports its cost: messages, bytes on
// the wire (payload + instance + 8 bytes of framing per packet), bytes per
// replica (the total over n), and for AVID the work done (Merkle proof
// checks, Reed–Solomon encodings and decodings, summed over replicas).
// proto=rbc is Bracha's broadcast with the same payload, for comparison:
//
//	go test -run XXX -bench Broadcast -benchtime 10x ./broadcast/avid/
func BenchmarkBroadcast(b *testing.B) {
	for _, proto := range []string{"avid", "rbc"} {
		for _, n := range []int{4, 7, 16} {
			for _, size := range []int{1 << 10, 64 << 10, 1 << 20} {
				name := fmt.Sprintf("proto=%s/n=%d/payload=%dKiB", proto, n, size>>10)
				b.Run(name, func(b *testing.B) { benchBroadcast(b, proto, n, size) })
			}
		}
	}
}

func benchBroadcast(b *testing.B, proto string, n, size int) {
	suite, err := suites.Get(proto, suites.Options{PayloadSize: size, InlineChecks: true})
	if err != nil {
		b.Fatal(err)
	}
	f := (n - 1) / 3
	var msgs, bytes uint64
	var ops struct{ proofs, enc, dec int }
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res := sim.Run(suite, sim.Config{N: n, F: f, Seed: uint64(i), NoFaults: true})
		if !res.OK() || res.Stats.Deliveries != uint64(n) {
			b.Fatalf("run %d: %d deliveries, %v", i, res.Stats.Deliveries, res.Violations)
		}
		msgs += res.Stats.Messages
		bytes += res.Stats.Bytes
		if run := suites.LastAVIDRun(suite); run != nil {
			o := run.Ops(core.MustGroup(n, f, core.Async).Members())
			ops.proofs += o.ProofChecks
			ops.enc += o.Encodes
			ops.dec += o.Decodes
		}
	}
	per := func(x uint64) float64 { return float64(x) / float64(b.N) }
	b.ReportMetric(per(msgs), "msgs/op")
	b.ReportMetric(per(bytes), "wireB/op")
	b.ReportMetric(per(bytes)/float64(n), "B/replica")
	b.ReportMetric(per(bytes)/float64(n)/float64(size), "B/replica/payloadB")
	if proto == "avid" {
		b.ReportMetric(per(uint64(ops.proofs)), "proofchecks/op")
		b.ReportMetric(per(uint64(ops.enc)), "encodes/op")
		b.ReportMetric(per(uint64(ops.dec)), "decodes/op")
	}
}
