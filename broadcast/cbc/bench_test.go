package cbc_test

import (
	"fmt"
	"testing"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/sim"
	"github.com/maftia/maftia/sim/suites"
)

// BenchmarkCBC runs one consistent-broadcast instance (a correct sender,
// no faults, 1 KiB payload) per op in the simulator and reports its cost:
// messages, bytes on the wire, bytes per replica, and the threshold-crypto
// operations summed over all replicas (shares signed, shares verified one
// by one, interpolations, signature verifications). Keys are dealt once
// per seed (8 seeds, cached), so ns/op is dominated by the pairings:
//
//	go test -run XXX -bench CBC -benchtime 20x ./broadcast/cbc/
func BenchmarkCBC(b *testing.B) {
	for _, n := range []int{4, 7, 16} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			suite, err := suites.Get("cbc", suites.Options{PayloadSize: 1 << 10, InlineChecks: true})
			if err != nil {
				b.Fatal(err)
			}
			f := (n - 1) / 3
			members := core.MustGroup(n, f, core.Async).Members()
			var msgs, bytes uint64
			var sign, shareChecks, combines, sigChecks int
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				res := sim.Run(suite, sim.Config{N: n, F: f, Seed: uint64(i % 8), NoFaults: true})
				if !res.OK() || res.Stats.Deliveries != uint64(n) {
					b.Fatalf("run %d: %d deliveries, %v", i, res.Stats.Deliveries, res.Violations)
				}
				msgs += res.Stats.Messages
				bytes += res.Stats.Bytes
				o, _ := suites.LastCBCRun(suite).Ops(members)
				sign += o.SignShares
				shareChecks += o.ShareChecks
				combines += o.Combines
				sigChecks += o.SigChecks
			}
			per := func(x int) float64 { return float64(x) / float64(b.N) }
			b.ReportMetric(per(int(msgs)), "msgs/op")
			b.ReportMetric(per(int(bytes)), "wireB/op")
			b.ReportMetric(per(int(bytes))/float64(n), "B/replica")
			b.ReportMetric(per(sign), "signshares/op")
			b.ReportMetric(per(shareChecks), "sharechecks/op")
			b.ReportMetric(per(combines), "combines/op")
			b.ReportMetric(per(sigChecks), "sigchecks/op")
		})
	}
}
