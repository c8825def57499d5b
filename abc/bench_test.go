package abc_test

import (
	"fmt"
	"testing"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/sim"
	"github.com/maftia/maftia/sim/suites"
)

// BenchmarkABCEpoch orders 2·n·BatchSize requests (given to every replica)
// in the simulator with no faults and reports, per delivered request, the
// messages and bytes exchanged and the threshold-crypto operations of the
// atomic broadcast itself (proof shares signed, combinations, proof checks
// of MVBA proposals; the MVBA's own coin and ABA work comes on top).
func BenchmarkABCEpoch(b *testing.B) {
	for _, n := range []int{4, 7} {
		for _, batch := range []int{1, 16, 256, 4096} {
			if n == 7 && batch == 4096 {
				continue // 57k requests per iteration: too slow for a 2-core run
			}
			b.Run(fmt.Sprintf("n=%d/batch=%d", n, batch), func(b *testing.B) {
				var reqs, msgs, bytes, ops float64
				for i := 0; i < b.N; i++ {
					s := suites.ABC(suites.Options{})
					s.BatchSize = batch
					g := core.MustGroup(n, (n-1)/3, core.Async)
					c, err := sim.NewCluster(s.Suite, g, uint64(i), nil, false)
					if err != nil {
						b.Fatal(err)
					}
					k := 2 * n * batch
					for r := 0; r < k; r++ {
						req := suites.ClientRequestForTest(fmt.Sprintf("r%d", r))
						for _, id := range g.Members() {
							c.Input(id, core.Input{Instance: suites.ABCRoot, Value: req})
						}
					}
					for len(c.Pending()) > 0 {
						c.Deliver(0)
					}
					if c.Err() != nil {
						b.Fatal(c.Err())
					}
					got := len(logOf(c, 1))
					if got != k {
						b.Fatalf("delivered %d of %d", got, k)
					}
					reqs += float64(got)
					msgs += float64(c.Stats().Messages)
					bytes += float64(c.Stats().Bytes)
					for _, id := range g.Members() {
						o := s.Core(id).Ops()
						ops += float64(o.SharesSigned + o.Combines + o.CertVerifies)
					}
				}
				b.ReportMetric(msgs/reqs, "msgs/req")
				b.ReportMetric(bytes/reqs, "bytes/req")
				b.ReportMetric(ops/reqs, "tcrypto/req")
				b.ReportMetric(reqs/float64(b.N), "reqs/op")
			})
		}
	}
}
