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

// orderedRequests counts the requests replica id has ordered.
func orderedRequests(c *sim.Cluster, id core.NodeID) int {
	got := 0
	for _, d := range c.Deliveries(id) {
		if b, ok := d.Value.(*wire.Batch); ok {
			got += len(b.Requests)
		}
	}
	return got
}

// BenchmarkHybridVersusABC orders R requests (given to every replica) with
// the hybrid engine at n = 3 (f = 1, TTCB) and with asynchronous atomic
// broadcast (abc: AVID + MVBA + threshold coin) at n = 4 (f = 1), no
// faults, FIFO, and reports payload messages and bytes per ordered
// request (plus TBA proposals for the hybrid engine).
func BenchmarkHybridVersusABC(b *testing.B) {
	for _, reqs := range []int{1, 100} {
		b.Run(fmt.Sprintf("hybrid/n=3/requests=%d", reqs), func(b *testing.B) {
			suite, _ := suites.Get("hybrid-smr", suites.Options{})
			g := core.MustGroup(3, 1, core.HybridSMR)
			var msgs, bytes, props float64
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
				drain(b, c, func() bool {
					for _, id := range g.Members() {
						if orderedRequests(c, id) < reqs {
							return false
						}
					}
					return true
				})
				msgs += float64(c.Stats().Messages)
				bytes += float64(c.Stats().Bytes)
				p, _ := suites.TBAProposals(suite)
				props += float64(p)
			}
			per := float64(b.N * reqs)
			b.ReportMetric(msgs/per, "msgs/req")
			b.ReportMetric(bytes/per, "bytes/req")
			b.ReportMetric(props/per, "tba-proposals/req")
		})
		b.Run(fmt.Sprintf("abc/n=4/requests=%d", reqs), func(b *testing.B) {
			g := core.MustGroup(4, 1, core.Async)
			var msgs, bytes float64
			for i := 0; i < b.N; i++ {
				s := suites.ABC(suites.Options{})
				c, err := sim.NewCluster(s.Suite, g, uint64(i), nil, false)
				if err != nil {
					b.Fatal(err)
				}
				for k := 0; k < reqs; k++ {
					req := suites.ClientRequestForTest(fmt.Sprintf("r%d", k))
					for _, id := range g.Members() {
						c.Input(id, core.Input{Instance: suites.ABCRoot, Value: req})
					}
				}
				for len(c.Pending()) > 0 {
					c.Deliver(0)
				}
				if got := orderedRequests(c, 1); got != reqs {
					b.Fatalf("abc ordered %d of %d", got, reqs)
				}
				msgs += float64(c.Stats().Messages)
				bytes += float64(c.Stats().Bytes)
			}
			per := float64(b.N * reqs)
			b.ReportMetric(msgs/per, "msgs/req")
			b.ReportMetric(bytes/per, "bytes/req")
		})
	}
}
