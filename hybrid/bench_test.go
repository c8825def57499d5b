package hybrid_test

import (
	"fmt"
	"testing"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/sim"
	"github.com/maftia/maftia/sim/suites"
	"github.com/maftia/maftia/wire"
)

// drain delivers every pending packet in FIFO order and advances abstract
// time until done holds (no faults).
func drain(b *testing.B, c *sim.Cluster, done func() bool) uint64 {
	for ticks := uint64(0); ; ticks++ {
		for len(c.Pending()) > 0 {
			c.Deliver(0)
		}
		if done() {
			return c.Stats().Steps
		}
		if ticks > 1_000_000 {
			b.Fatal("no progress")
		}
		c.Tick()
	}
}

// BenchmarkRMulticast: one BRM-T multicast from a correct sender to
// delivery at every replica (no faults, FIFO): payload messages and TBA
// proposals per delivered message (per replica-delivery and per multicast).
func BenchmarkRMulticast(b *testing.B) {
	for _, size := range []sim.Size{{N: 3, F: 1}, {N: 4, F: 2}, {N: 7, F: 5}} {
		b.Run(fmt.Sprintf("n=%d/f=%d", size.N, size.F), func(b *testing.B) {
			suite, _ := suites.Get("hybrid-rmcast", suites.Options{PayloadSize: 1 << 10})
			g := core.MustGroup(size.N, size.F, core.HybridMulticast)
			payload := make([]byte, 1<<10)
			var msgs, props, steps uint64
			for i := 0; i < b.N; i++ {
				c, err := sim.NewCluster(suite, g, uint64(i), nil, false)
				if err != nil {
					b.Fatal(err)
				}
				c.Input(1, core.Input{Instance: core.RootN("brm", 1), Value: payload})
				steps += drain(b, c, func() bool {
					for _, id := range g.Members() {
						if len(c.Deliveries(id)) != 1 {
							return false
						}
					}
					return true
				})
				msgs += c.Stats().Messages
				p, _ := suites.TBAProposals(suite)
				props += p
			}
			b.ReportMetric(float64(msgs)/float64(b.N), "msgs/mcast")
			b.ReportMetric(float64(props)/float64(b.N), "tba-proposals/mcast")
			b.ReportMetric(float64(steps)/float64(b.N), "ticks/mcast")
		})
	}
}

// BenchmarkEngine: R client requests submitted to every replica of the
// hybrid ordering engine, run to the point where every replica ordered
// them all (no faults, FIFO): payload messages, TBA proposals and epochs
// per ordered request.
func BenchmarkEngine(b *testing.B) {
	for _, size := range []sim.Size{{N: 3, F: 1}, {N: 5, F: 2}} {
		for _, reqs := range []int{1, 100} {
			b.Run(fmt.Sprintf("n=%d/requests=%d", size.N, reqs), func(b *testing.B) {
				suite, _ := suites.Get("hybrid-smr", suites.Options{})
				g := core.MustGroup(size.N, size.F, core.HybridSMR)
				var msgs, props, steps, batches uint64
				for i := 0; i < b.N; i++ {
					c, err := sim.NewCluster(suite, g, uint64(i), nil, false)
					if err != nil {
						b.Fatal(err)
					}
					for k := 0; k < reqs; k++ {
						for _, id := range g.Members() {
							c.Input(id, core.Input{Instance: core.Root("order"), Value: fmt.Appendf(nil, "ok:req-%d", k)})
						}
					}
					steps += drain(b, c, func() bool {
						for _, id := range g.Members() {
							got := 0
							for _, d := range c.Deliveries(id) {
								got += len(d.Value.(*wire.Batch).Requests)
							}
							if got < reqs {
								return false
							}
						}
						return true
					})
					batches += uint64(len(c.Deliveries(1)))
					msgs += c.Stats().Messages
					p, _ := suites.TBAProposals(suite)
					props += p
				}
				per := float64(b.N) * float64(reqs)
				b.ReportMetric(float64(msgs)/per, "msgs/req")
				b.ReportMetric(float64(props)/per, "tba-proposals/req")
				b.ReportMetric(float64(batches)/float64(b.N), "batches/run")
				b.ReportMetric(float64(steps)/float64(b.N), "ticks/run")
			})
		}
	}
}
