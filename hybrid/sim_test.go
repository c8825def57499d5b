package hybrid_test

import (
	"fmt"
	"math/rand/v2"
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

// A correct replica of the hybrid ordering engine that crashes at a random
// point and restarts from its persisted resume record (ATTACKS.md row 1)
// never contradicts what it delivered before (no batch twice, none
// skipped, the same order as the others), accuses nobody, proposes no
// second batch of its own for the epoch it resumes at, and catches up so
// that every request is ordered everywhere.
func TestEngineRestartedReplicaResumesSafely(t *testing.T) {
	if v := restartCampaign(t, "", simtest.Seeds(150)); v != "" {
		t.Fatal(v)
	}
}

// The restart check has teeth: a replica that ignores its resume record
// (starts again at epoch 0) is caught.
func TestSimulatorCatchesRestartWithoutResumeRecord(t *testing.T) {
	if v := restartCampaign(t, "restart-forgets", 30); v == "" {
		t.Fatal("a replica restarting from scratch passed")
	} else {
		t.Logf("caught: %s", v)
	}
}

func restartCampaign(t *testing.T, broken string, seeds int) string {
	for _, size := range []sim.Size{{N: 3, F: 1}, {N: 5, F: 2}} {
		g := core.MustGroup(size.N, size.F, core.HybridSMR)
		for seed := uint64(0); seed < uint64(seeds); seed++ {
			s := suites.HybridSMR(suites.Options{Broken: broken})
			c, err := sim.NewCluster(s, g, seed, nil, false)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(seed, 17))
			victim := core.NodeID(1 + rng.IntN(size.N))
			submit := func(tag string, k int) { submitAll(c, g, tag, k) }
			run := func(steps int) { drive(c, rng, steps, nil) }
			submit("a", 1+rng.IntN(4))
			run(rng.IntN(400))
			c.Crash(victim)
			run(rng.IntN(200))
			if err := c.Restart(victim); err != nil {
				t.Fatal(err)
			}
			submit("b", 1+rng.IntN(4))
			for i := 0; i < 400 && !s.Terminated(c); i++ {
				run(50)
			}
			if v := verdict(c, s); v != "" {
				return fmt.Sprintf("n=%d seed %d victim %d: %s", size.N, seed, victim, v)
			}
		}
	}
	t.Logf("%d schedules with a crash and restart, 0 violations", 2*seeds)
	return ""
}

// withholding wraps the TTCB model: a third of the block-agreement
// results due to victim are withheld (refused with ErrUnavailable), as a
// module does after a timing failure of its own in an execution.
type withholding struct {
	sim.Service
	victim core.NodeID
	rng    *rand.Rand
	n      int
}

func (w *withholding) Advance(now uint64) []sim.ServiceDelivery {
	ds := w.Service.Advance(now)
	for i, d := range ds {
		if _, ok := d.Reply.Reply.(ttcb.TBAResult); ok && d.To == w.victim && w.rng.IntN(3) == 0 {
			ds[i].Reply.Reply = ttcb.Refused{Err: ttcb.ErrUnavailable}
			w.n++
		}
	}
	return ds
}

// A replica whose TTCB module withholds results (ATTACKS row 13: the
// software TTCB's timing failures on a stalled host) obtains them from
// f+1 other replicas and keeps ordering the same batches as everyone.
func TestEngineRelaysResultsTheLocalTTCBWithheld(t *testing.T) {
	seeds := simtest.Seeds(150)
	withheld := 0
	for _, size := range []sim.Size{{N: 3, F: 1}, {N: 5, F: 2}} {
		for _, attest := range []bool{false, true} {
			withheld += relayRuns(t, size, attest, seeds)
		}
	}
	t.Logf("%d schedules, %d results withheld and relayed, 0 violations", 4*seeds, withheld)
}

// With attested results, one correct replica whose module answered is
// enough: a replica whose module withholds results still orders while f
// others are Byzantine (silent, or relaying forged results, which are
// refused and reported).
func TestEngineRelaysAttestedResultsDespiteByzantineReplicas(t *testing.T) {
	seeds := simtest.Seeds(100)
	for _, size := range []sim.Size{{N: 3, F: 1}, {N: 5, F: 2}} {
		relayRuns(t, size, true, seeds, sim.Silent{}, sim.Wrong{})
	}
	t.Logf("%d schedules with f Byzantine replicas and a withholding TTCB, 0 violations", 2*2*seeds)
}

func relayRuns(t *testing.T, size sim.Size, attest bool, seeds int, byz ...sim.Behaviour) int {
	t.Helper()
	withheld := 0
	g := core.MustGroup(size.N, size.F, core.HybridSMR)
	behaviours := byz
	if len(behaviours) == 0 {
		behaviours = []sim.Behaviour{nil}
	}
	for _, b := range behaviours {
		for seed := uint64(0); seed < uint64(seeds); seed++ {
			s := suites.HybridSMR(suites.Options{TTCBAttest: attest})
			rng := rand.New(rand.NewPCG(seed, 23))
			// Byzantine replicas are the last f; the victim a correct one.
			victim := core.NodeID(1 + rng.IntN(size.N-size.F))
			var faulty map[core.NodeID]sim.Behaviour
			if b != nil {
				faulty = map[core.NodeID]sim.Behaviour{}
				for i := range size.F {
					faulty[core.NodeID(size.N-i)] = b
				}
			}
			w := &withholding{victim: victim, rng: rand.New(rand.NewPCG(seed, 29))}
			inner := s.Services
			s.Services = func(g core.Group, seed uint64) map[string]sim.Service {
				m := inner(g, seed)
				w.Service = m[ttcb.ServiceName]
				m[ttcb.ServiceName] = w
				return m
			}
			c, err := sim.NewCluster(s, g, seed, faulty, false)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 1 + rng.IntN(6) {
				req := fmt.Appendf(nil, "ok:r-%d", i)
				for _, id := range c.Correct() {
					c.Input(id, core.Input{Instance: suites.SMRRoot, Value: req})
				}
			}
			drive(c, rng, 20_000, func() bool { return s.Terminated(c) })
			where := fmt.Sprintf("n=%d attest=%v byz=%v seed %d victim %d", size.N, attest, b, seed, victim)
			if v := verdict(c, s); v != "" {
				t.Fatalf("%s: %s", where, v)
			}
			withheld += w.n
		}
	}
	return withheld
}

// When the modules of every host withhold an execution (a stall that hit
// them all), each replica relays its module's attested withholding; with
// all n attestations the execution counts as undecided everywhere (no
// module answered it, so nobody used a result) and ordering goes on.
func TestEngineSurvivesAnExecutionEveryModuleWithheld(t *testing.T) {
	seeds := simtest.Seeds(150)
	all := uint64(0)
	for _, size := range []sim.Size{{N: 3, F: 1}, {N: 5, F: 2}} {
		g := core.MustGroup(size.N, size.F, core.HybridSMR)
		for seed := uint64(0); seed < uint64(seeds); seed++ {
			s := suites.HybridSMR(suites.Options{TTCBAttest: true})
			c, err := sim.NewCluster(s, g, seed, nil, false)
			if err != nil {
				t.Fatal(err)
			}
			suites.TTCBModel(s).SetWithhold(func(_ core.NodeID, k ttcb.ExecKey) bool { return (k[0]^byte(seed))%5 == 0 })
			rng := rand.New(rand.NewPCG(seed, 31))
			for i := range 1 + rng.IntN(6) {
				req := fmt.Appendf(nil, "ok:r-%d", i)
				for _, id := range g.Members() {
					c.Input(id, core.Input{Instance: suites.SMRRoot, Value: req})
				}
			}
			drive(c, rng, 20_000, func() bool { return s.Terminated(c) })
			where := fmt.Sprintf("n=%d seed %d", size.N, seed)
			if v := verdict(c, s); v != "" {
				t.Fatalf("%s: %s", where, v)
			}
			all++
		}
	}
	t.Logf("%d schedules with executions every module withheld, 0 violations", all)
}

// One TTCB module crashes (its host's replica gets no answers; the calls
// it made are repeated after the restart, as the runtime's adapter does)
// and comes back: order stays consistent throughout, and afterwards every
// request is ordered everywhere, the replica of that host included (TTCB
// modules are crash-only; DESIGN §1).
func TestEngineWithACrashedTTCBModule(t *testing.T) {
	seeds := simtest.Seeds(150)
	for _, size := range []sim.Size{{N: 3, F: 1}, {N: 5, F: 2}} {
		g := core.MustGroup(size.N, size.F, core.HybridSMR)
		for seed := uint64(0); seed < uint64(seeds); seed++ {
			s := suites.HybridSMR(suites.Options{TTCBAttest: true})
			c, err := sim.NewCluster(s, g, seed, nil, false)
			if err != nil {
				t.Fatal(err)
			}
			m := suites.TTCBModel(s)
			rng := rand.New(rand.NewPCG(seed, 37))
			host := core.NodeID(1 + rng.IntN(size.N))
			submit := func(tag string, k int) { submitAll(c, g, tag, k) }
			run := func(steps int) { drive(c, rng, steps, nil) }
			submit("a", 1+rng.IntN(3))
			run(rng.IntN(300))
			m.Crash(host)
			submit("b", 1+rng.IntN(3))
			run(600)
			m.Restart(host)
			for i := 0; i < 400 && !s.Terminated(c); i++ {
				run(50)
			}
			where := fmt.Sprintf("n=%d seed %d module %d", size.N, seed, host)
			if v := verdict(c, s); v != "" {
				t.Fatalf("%s: %s", where, v)
			}
		}
	}
	t.Logf("%d schedules with a crashed and restarted TTCB module, 0 violations", 2*seeds)
}

// drive takes up to steps scheduling steps: a random pending message is
// delivered three times in four, else time advances (timers, TTCB
// replies); it stops early once done (if set) holds.
// submitAll gives k valid requests tagged tag to every replica.
func submitAll(c *sim.Cluster, g core.Group, tag string, k int) {
	for i := range k {
		req := fmt.Appendf(nil, "ok:%s-%d", tag, i)
		for _, id := range g.Members() {
			c.Input(id, core.Input{Instance: suites.SMRRoot, Value: req})
		}
	}
}

func drive(c *sim.Cluster, rng *rand.Rand, steps int, done func() bool) {
	for range steps {
		if done != nil && done() {
			return
		}
		if p := c.Pending(); len(p) > 0 && rng.IntN(4) > 0 {
			c.Deliver(rng.IntN(len(p)))
		} else {
			c.Tick()
		}
	}
}

// verdict is "" or the first problem of a finished run: a correct replica
// halted, a property of the suite violated, a request not ordered
// everywhere, or evidence against a correct replica.
func verdict(c *sim.Cluster, s *sim.Suite) string {
	if err := c.Err(); err != nil {
		return err.Error()
	}
	if v := s.Check(c); len(v) > 0 {
		return fmt.Sprint(v)
	}
	if !s.Terminated(c) {
		return "not every request ordered everywhere"
	}
	for _, e := range c.Evidence() {
		if c.IsCorrect(e.Evidence.Accused) {
			return fmt.Sprintf("correct replica accused: %+v", e)
		}
	}
	return ""
}
