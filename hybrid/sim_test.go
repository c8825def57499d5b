package hybrid_test

import (
	"strings"
	"testing"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/sim"
	"github.com/maftia/maftia/sim/simtest"
	"github.com/maftia/maftia/sim/suites"
	"github.com/maftia/maftia/ttcb"
)

func campaign(t testing.TB, name, broken string, sizes []sim.Size, seeds int) *sim.Campaign {
	s, err := suites.Get(name, suites.Options{Broken: broken})
	if err != nil {
		t.Fatal(err)
	}
	return &sim.Campaign{
		Suite:      s,
		NewSuite:   func() *sim.Suite { s, _ := suites.Get(name, suites.Options{Broken: broken}); return s },
		Sizes:      sizes,
		Behaviours: append(sim.AllBehaviours(), s.Attacks...),
		Seeds:      seeds,
	}
}

var rmSizes = []sim.Size{{N: 3, F: 1}, {N: 4, F: 2}}

// BRM-T with f = n−2 Byzantine replicas of every behaviour (equivocating
// and withholding senders, replicas proposing wrong hashes to the TTCB)
// under the adversarial scheduler: agreement (same message or none),
// integrity, validity for correct senders and totality.
func TestRMulticastPropertiesUnderByzantineReplicas(t *testing.T) {
	sum := simtest.Run(t, campaign(t, "hybrid-rmcast", "", rmSizes, simtest.Seeds(1200)))
	if sum != nil {
		t.Logf("%d steps, %d messages, max %d packets in flight", sum.Steps, sum.Messages, sum.MaxPending)
	}
}

// The checker has teeth: delivering the payload message without waiting
// for the TTCB's agreement on its hash breaks agreement under an
// equivocating sender.
func TestSimulatorCatchesRMulticastDeliveringOnData(t *testing.T) {
	catchBroken(t, "hybrid-rmcast", "deliver-on-data", rmSizes, 200, "agreement")
}

// catchBroken runs a deliberately broken variant against equivocating
// replicas and requires the checker to report the named property with a
// trace.
func catchBroken(t *testing.T, suite, broken string, sizes []sim.Size, seeds int, property string) {
	t.Helper()
	cp := campaign(t, suite, broken, sizes, seeds)
	cp.Behaviours = []sim.Behaviour{sim.Equivocate{}}
	cp.KeepFailures = 1
	sum := cp.Run()
	if sum.Violations == 0 {
		t.Fatalf("broken %s (%s) passed %d schedules", suite, broken, sum.Schedules)
	}
	f := sum.Failures[0]
	if !strings.Contains(strings.Join(f.Violations, "\n"), property) || !strings.Contains(f.Trace, "DELIVER") {
		t.Fatalf("failure lacks a %s violation or a trace: %v", property, f.Violations)
	}
	t.Logf("broken variant caught: %s; first failing seed %d: %s", sum, f.Seed, f.Violations[0])
}

var smrSizes = []sim.Size{{N: 3, F: 1}, {N: 5, F: 2}}

// The hybrid ordering engine with n = 2f+1 (n ∈ {3, 5}) and f Byzantine
// replicas of every behaviour (equivocating batches, forged requests,
// wrong hashes to the TTCB, withheld batches) under the adversarial
// scheduler: agreement and total order, integrity, validity (every
// request submitted to f+1 correct replicas is ordered everywhere).
func TestEnginePropertiesUnderByzantineReplicas(t *testing.T) {
	sum := simtest.Run(t, campaign(t, "hybrid-smr", "", smrSizes, simtest.Seeds(1000)))
	if sum != nil {
		t.Logf("%d steps, %d messages, max %d packets in flight", sum.Steps, sum.Messages, sum.MaxPending)
	}
}

// The checker has teeth: an engine that orders the first batch it
// receives in an epoch, without waiting for the TTCB's agreement, violates
// total order under an equivocating replica.
func TestSimulatorCatchesEngineOrderingWithoutAgreement(t *testing.T) {
	catchBroken(t, "hybrid-smr", "order-first-propose", smrSizes, 10, "total order")
}

// apps/kv runs unchanged on smr.Replica with the hybrid engine on a
// 3-replica cluster (configuration "hybrid"): same executions, same
// results and equal state digests at every correct replica, each request
// executed exactly once.
func TestKVOnHybridEngine(t *testing.T) {
	simtest.Run(t, campaign(t, "hybrid-kv", "", []sim.Size{{N: 3, F: 1}}, simtest.Seeds(300)))
}

var vcSizes = []sim.Size{{N: 4, F: 1}, {N: 7, F: 2}}

// Vector consensus (n ∈ {4, 7}, n = 3f+1) with f Byzantine replicas of
// every behaviour: agreement, vector validity (≥ f+1 entries from correct
// replicas, each their proposal), termination.
func TestVConsensusPropertiesUnderByzantineReplicas(t *testing.T) {
	simtest.Run(t, campaign(t, "hybrid-vconsensus", "", vcSizes, simtest.Seeds(1000)))
}

// Multivalued consensus on top: agreement, validity (unanimous correct
// proposals are decided; a non-default decision was proposed by a correct
// replica), termination.
func TestConsensusPropertiesUnderByzantineReplicas(t *testing.T) {
	simtest.Run(t, campaign(t, "hybrid-consensus", "", vcSizes, simtest.Seeds(1000)))
}

// The checker has teeth: deciding on the payload messages without the
// TTCB's agreement violates agreement.
func TestSimulatorCatchesVConsensusDecidingOnData(t *testing.T) {
	catchBroken(t, "hybrid-vconsensus", "decide-on-data", vcSizes, 30, "agreement")
}

// Atomic multicast on vector consensus (n ∈ {4, 7}): agreement and total
// order, integrity, validity.
func TestAMulticastPropertiesUnderByzantineReplicas(t *testing.T) {
	simtest.Run(t, campaign(t, "hybrid-amcast", "", vcSizes, simtest.Seeds(300)))
}

// rolledBack wraps a TTCB service so that host 1's module answers from a
// rolled-back state (ATTACKS row 12): the decided block agreements on
// replica 2's batches (engine tags carry the owner) look undecided to it,
// i.e. two results for one agreement.
type rolledBack struct{ sim.Service }

func (r rolledBack) Advance(now uint64) []sim.ServiceDelivery {
	ds := r.Service.Advance(now)
	for i, d := range ds {
		if res, ok := d.Reply.Reply.(ttcb.TBAResult); ok && d.To == 1 && res.Decided && d.Reply.Tag>>2&(1<<11-1) == 2 {
			ds[i].Reply.Reply = ttcb.TBAResult{Tag: res.Tag, ProposedAny: res.ProposedAny}
		}
	}
	return ds
}

// The hybrid protocols rely on the TTCB never giving two results for one
// agreement (ATTACKS row 12: a rolled-back or cloned module must be
// refused by the ttcb package): with one module answering from a rolled
// back state, the checker reports the broken total order.
func TestSimulatorCatchesRolledBackTTCB(t *testing.T) {
	mk := func() *sim.Suite {
		s, _ := suites.Get("hybrid-smr", suites.Options{})
		s.Start = func(c *sim.Cluster) { // one request per correct replica
			c.Input(1, core.Input{Instance: core.Root("order"), Value: []byte("ok:one")})
			c.Input(2, core.Input{Instance: core.Root("order"), Value: []byte("ok:two")})
		}
		inner := s.Services
		s.Services = func(g core.Group, seed uint64) map[string]sim.Service {
			m := inner(g, seed)
			m[ttcb.ServiceName] = rolledBack{m[ttcb.ServiceName]}
			return m
		}
		return s
	}
	cp := &sim.Campaign{Suite: mk(), NewSuite: mk, Sizes: []sim.Size{{N: 3, F: 1}}, Seeds: 10, KeepFailures: 1,
		Behaviours: []sim.Behaviour{sim.Silent{}}}
	sum := cp.Run()
	if sum.Violations == 0 || !strings.Contains(strings.Join(sum.Failures[0].Violations, "\n"), "total order") {
		t.Fatalf("a rolled-back TTCB went unnoticed in %d schedules: %v", sum.Schedules, sum.Failures)
	}
	t.Logf("rolled-back TTCB caught: %s; first failing seed %d: %s", sum, sum.Failures[0].Seed, sum.Failures[0].Violations[0])
}
