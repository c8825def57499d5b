package ttcb

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// benchDelta and benchGap can be set with MAFTIA_TTCB_BENCH_DELTA and
// MAFTIA_TTCB_BENCH_GAP (Go durations).
var benchDelta, benchGap = envDuration("MAFTIA_TTCB_BENCH_DELTA", 50*time.Millisecond),
	envDuration("MAFTIA_TTCB_BENCH_GAP", 500*time.Microsecond)

func envDuration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil && d > 0 {
		return d
	}
	return def
}

func benchCluster(b *testing.B, n int) (*cluster, []*Client) {
	tweakConfig = func(c *Config) { c.RateEvery, c.Slack = 0, benchDelta*4/5 }
	defer func() { tweakConfig = nil }()
	hosts := make([]uint32, n)
	for i := range hosts {
		hosts[i] = uint32(i + 1)
	}
	c := newCluster(b, n, 1, benchDelta, hosts)
	c.waitJoined(hosts...)
	time.Sleep(2 * benchDelta) // executions may start one slot after the last module joined
	cls := make([]*Client, n)
	for i := range cls {
		cls[i] = c.dial(EntityID(i + 1))
	}
	return c, cls
}

// runBatch runs k executions: every entity proposes to each, then decides
// each. It returns the number of executions on which every entity got the
// same result (errors — e.g. after a timing-failure restart — count as
// not done).
func runBatch(ctx context.Context, cls []*Client, k int, lead time.Duration) (int, error) {
	elist := make([]EntityID, len(cls))
	for i := range elist {
		elist[i] = EntityID(i + 1)
	}
	now, err := cls[0].GetTimestamp(ctx)
	if err != nil {
		return 0, err
	}
	tstart := now + uint64(lead)
	results := make([][]TBAResult, len(cls))
	errs := make([]error, len(cls))
	var wg sync.WaitGroup
	for i, cl := range cls {
		wg.Go(func() {
			tags := make([]Tag, k)
			for j := range k {
				p, err := cl.Propose(ctx, elist, tstart+uint64(j), DecisionMajority, val(byte(j)))
				if err != nil {
					errs[i] = err
					return
				}
				tags[j] = p.Tag
			}
			for _, tag := range tags {
				r, err := cl.Decide(ctx, tag)
				if err != nil {
					errs[i] = err
					return
				}
				results[i] = append(results[i], r)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return 0, err
		}
	}
	for j := range k {
		for i := range cls {
			if results[i][j].Unattested() != results[0][j].Unattested() {
				return 0, fmt.Errorf("AGREEMENT VIOLATED in execution %d", j)
			}
		}
	}
	return k, nil
}

// BenchmarkTBALatency: one execution at a time, every module's entity
// proposes (tstart = now + 2 ms) and waits for the result.
func BenchmarkTBALatency(b *testing.B) {
	for _, n := range []int{3, 5} {
		b.Run(fmt.Sprintf("modules=%d", n), func(b *testing.B) {
			c, cls := benchCluster(b, n)
			ctx := ctxT(b, 10*time.Minute)
			failed := 0
			b.ResetTimer()
			for b.Loop() {
				if _, err := runBatch(ctx, cls, 1, 2*time.Millisecond); err != nil {
					if errorsIsViolation(err) {
						b.Fatal(err)
					}
					failed++
					cls = c.redial()
				}
			}
			b.ReportMetric(float64(failed), "failed")
			b.ReportMetric(float64(c.restarts.Load()), "restarts")
		})
	}
}

// BenchmarkTBAThroughput: a pipelined stream of executions, execution j
// with tstart = t0 + lead + j·gap, every module's entity proposing to each
// (one session) and deciding each (a second session). agreements/s counts
// executions for which every entity got the same result, over wall time.
func BenchmarkTBAThroughput(b *testing.B) {
	for _, n := range []int{3, 5} {
		b.Run(fmt.Sprintf("modules=%d", n), func(b *testing.B) {
			c, props := benchCluster(b, n)
			decs := c.redial()
			ctx := ctxT(b, 10*time.Minute)
			elist := make([]EntityID, n)
			for i := range elist {
				elist[i] = EntityID(i + 1)
			}
			gap := uint64(benchGap)
			k := b.N
			t0, err := props[0].GetTimestamp(ctx)
			if err != nil {
				b.Fatal(err)
			}
			t0 += uint64(100 * time.Millisecond)
			results := make([][]TBAResult, n)
			start := time.Now()
			b.ResetTimer()
			var wg sync.WaitGroup
			for i := range n {
				results[i] = make([]TBAResult, k)
				var proposed atomic.Int64
				wg.Go(func() {
					cl := props[i]
					for j := range k {
						if _, err := cl.Propose(ctx, elist, t0+uint64(j)*gap, DecisionMajority, val(byte(j))); err != nil {
							cl = c.reconnect(cl, EntityID(i+1), err)
						}
						proposed.Store(int64(j + 1))
					}
				})
				wg.Go(func() {
					for j := range k {
						for proposed.Load() <= int64(j) && ctx.Err() == nil {
							time.Sleep(100 * time.Microsecond)
						}
						tag := ExecutionTag(elist, t0+uint64(j)*gap, DecisionMajority)
						if r, err := decs[i].Decide(ctx, tag); err == nil {
							results[i][j] = r
						} else {
							decs[i] = c.reconnect(decs[i], EntityID(i+1), err)
						}
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			done := 0
			for j := range k {
				ok := true
				for i := range n {
					if results[i][j].Tag == 0 {
						ok = false
					} else if results[0][j].Tag != 0 && results[i][j].Unattested() != results[0][j].Unattested() {
						b.Fatalf("AGREEMENT VIOLATED in execution %d", j)
					}
				}
				if ok {
					done++
				}
			}
			b.ReportMetric(float64(done)/elapsed.Seconds(), "agreements/s")
			b.ReportMetric(float64(k-done), "failed")
			b.ReportMetric(float64(c.restarts.Load()), "restarts")
		})
	}
}

// BenchmarkGetTimestamp: one authenticated local call round trip.
func BenchmarkGetTimestamp(b *testing.B) {
	_, cls := benchCluster(b, 3)
	ctx := ctxT(b, time.Minute)
	b.ResetTimer()
	for b.Loop() {
		if _, err := cls[0].GetTimestamp(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkModelTBA: the deterministic model, one 4-entity execution per op.
func BenchmarkModelTBA(b *testing.B) {
	m := mustModel(b, DefaultModelParams())
	elist := []EntityID{1, 2, 3, 4}
	now := uint64(0)
	for b.Loop() {
		ts := now + 5
		for _, e := range elist {
			m.Submit(now, e, req(1, TBAPropose{Elist: elist, TStart: ts, Decision: DecisionMajority, Value: val(1)}))
			m.Submit(now, e, req(2, TBADecide{Tag: ExecutionTag(elist, ts, DecisionMajority)}))
		}
		now = ts + DefaultModelParams().TBA
		if len(m.Advance(now)) != 8 {
			b.Fatal("missing replies")
		}
	}
}

// reconnect replaces a client whose session broke (its module restarted
// after a timing failure); other errors keep the client.
func (c *cluster) reconnect(cl *Client, e EntityID, err error) *Client {
	if !strings.Contains(err.Error(), "session broken") {
		return cl
	}
	cl.Close()
	for range 100 {
		c.waitJoined(c.hostIDs()...)
		if n, err := c.tryDial(e); err == nil {
			c.t.Cleanup(func() { n.Close() })
			return n
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("cannot reconnect entity %d", e)
	return nil
}

func errorsIsViolation(err error) bool {
	return err != nil && len(err.Error()) > 20 && err.Error()[:20] == "AGREEMENT VIOLATED i"
}

func (c *cluster) hostIDs() []uint32 {
	ids := make([]uint32, len(c.mods))
	for i := range ids {
		ids[i] = uint32(i + 1)
	}
	return ids
}

func (c *cluster) redial() []*Client {
	cls := make([]*Client, len(c.entities))
	for i := range cls {
		for try := 0; ; try++ {
			c.waitJoined(c.hostIDs()...)
			cl, err := c.tryDial(EntityID(i + 1))
			if err == nil {
				c.t.Cleanup(func() { cl.Close() })
				cls[i] = cl
				break
			}
			if try > 50 {
				c.t.Fatalf("redial entity %d: %v", i+1, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return cls
}
