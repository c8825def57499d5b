package rbc_test

import (
	"fmt"
	"testing"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/sim"
	"github.com/maftia/maftia/sim/suites"
)

// BenchmarkRBCBroadcast runs one broadcast from a correct sender to
// delivery at every replica in the simulator (no faults, FIFO delivery)
// and reports messages and bytes per broadcast; allocations come from
// -benchmem.
func BenchmarkRBCBroadcast(b *testing.B) {
	for _, n := range []int{4, 7, 10, 16} {
		for _, size := range []int{1 << 10, 64 << 10} {
			b.Run(fmt.Sprintf("n=%d/payload=%dKiB", n, size>>10), func(b *testing.B) {
				suite, _ := suites.Get("rbc", suites.Options{PayloadSize: size})
				g := core.MustGroup(n, (n-1)/3, core.Async)
				payload := make([]byte, size)
				var msgs, bytes uint64
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					c, err := sim.NewCluster(suite, g, uint64(i), nil, false)
					if err != nil {
						b.Fatal(err)
					}
					c.Input(1, core.Input{Instance: core.RootN("rbc", 1), Value: payload})
					for len(c.Pending()) > 0 {
						c.Deliver(0)
					}
					if got := len(c.Deliveries(core.NodeID(n))); got != 1 {
						b.Fatalf("replica %d delivered %d times", n, got)
					}
					msgs += c.Stats().Messages
					bytes += c.Stats().Bytes
				}
				b.ReportMetric(float64(msgs)/float64(b.N), "msgs/bcast")
				b.ReportMetric(float64(bytes)/float64(b.N)/float64(n), "bytes/replica")
			})
		}
	}
}
