package aba_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/sim"
	"github.com/maftia/maftia/sim/simtest"
	"github.com/maftia/maftia/sim/suites"
)

func abaCampaign(s *suites.ABASuite, seeds int, sizes ...sim.Size) *sim.Campaign {
	if len(sizes) == 0 {
		sizes = []sim.Size{{N: 4, F: 1}, {N: 7, F: 2}}
		if simtest.Seeds(0) > 0 {
			sizes = append(sizes, sim.Size{N: 10, F: 3})
		}
	}
	return &sim.Campaign{Suite: s.Suite, Sizes: sizes, Behaviours: suites.ABABehaviours(), Seeds: seeds}
}

// roundStats runs a campaign seed by seed to record, per run, the highest
// round in which a correct replica decided; it asserts that every run
// decided (and halted) at every correct replica.
type roundStats struct {
	runs, sum, max int
	hist           map[uint64]int
}

func (r *roundStats) String() string {
	keys := make([]uint64, 0, len(r.hist))
	for k := range r.hist {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "rounds to decide over %d runs: mean %.2f, max %d; histogram", r.runs, float64(r.sum)/float64(max(r.runs, 1)), r.max)
	for _, k := range keys {
		fmt.Fprintf(&b, " %d:%d", k, r.hist[k])
	}
	return b.String()
}

// Agreement, validity and termination (decide and halt) of binary agreement
// with f Byzantine replicas of every simulator behaviour plus the ABA liar
// (conflicting votes, forged coin shares), n ∈ {4, 7} (and 10 with
// MAFTIA_SIM_SEEDS), under the adversarial scheduler.
func TestABAPropertiesUnderByzantineReplicas(t *testing.T) {
	s := suites.ABA(suites.Options{})
	// Record, per run, the largest round in which a correct replica
	// decided: the suite's checker runs at the end of every run, so wrap it.
	worst := map[*sim.Cluster]uint64{}
	undecided := 0
	check := s.Check
	s.Check = func(c *sim.Cluster) []string {
		var w uint64
		ds := suites.ABADecisions(c)
		for _, id := range c.Correct() {
			if len(ds[id]) == 0 {
				w = 0
				break
			}
			w = max(w, ds[id][0].Round)
		}
		worst[c] = w
		return check(c)
	}
	cp := abaCampaign(s, simtest.Seeds(1000))
	if simtest.Run(t, cp) == nil {
		return // single-seed replay
	}
	st := &roundStats{hist: map[uint64]int{}}
	for _, w := range worst {
		if w == 0 {
			undecided++
			continue
		}
		st.runs++
		st.sum += int(w)
		st.max = max(st.max, int(w))
		st.hist[w]++
	}
	if undecided > 0 || st.runs != cp.Seeds {
		t.Fatalf("%d of %d runs ended with an undecided correct replica", cp.Seeds-st.runs, cp.Seeds)
	}
	t.Log(st)
}

// The checkers have teeth: an ABA that skips the coin (a fixed bit, or the
// replica's own estimate) is caught.
func TestSimulatorCatchesABAWithoutCoin(t *testing.T) {
	for _, broken := range []string{"fixed-coin", "local-coin"} {
		cp := abaCampaign(suites.ABA(suites.Options{Broken: broken}), 200)
		sum := cp.Run()
		if sum.Violations == 0 {
			t.Fatalf("%s: broken ABA passed %d schedules", broken, sum.Schedules)
		}
		f := sum.Failures[0]
		t.Logf("%s caught: %s; first failing seed %d: %v", broken, sum, f.Seed, f.Violations)
	}
}

// Same seed, same run: byte-identical traces (the coin keys are dealt from
// the seed).
func TestSameSeedSameTrace(t *testing.T) {
	s := suites.ABA(suites.Options{})
	cp := abaCampaign(s, 1)
	for seed := uint64(0); seed < 10; seed++ {
		cfg := cp.ConfigFor(seed)
		cfg.Trace = true
		a, b := sim.Run(s.Suite, cfg).Trace, sim.Run(s.Suite, cfg).Trace
		if a != b || a == "" {
			t.Fatalf("seed %d: traces differ", seed)
		}
	}
}

// A correct replica that crashes and restarts from its persisted records
// (ATTACKS.md row 1) never contradicts what it said before: agreement and
// validity hold, no correct replica is accused, and the others decide.
func TestRestartedReplicaStaysSafe(t *testing.T) {
	g := core.MustGroup(4, 1, core.Async)
	for seed := uint64(0); seed < 100; seed++ {
		s := suites.ABA(suites.Options{})
		c, err := sim.NewCluster(s.Suite, g, seed, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(seed, 9))
		for _, id := range g.Members() {
			c.Input(id, core.Input{Instance: suites.ABAInstance, Value: rng.IntN(2) == 0})
		}
		deliver := func(k int) {
			for i := 0; i < k && len(c.Pending()) > 0; i++ {
				c.Deliver(rng.IntN(len(c.Pending())))
			}
		}
		deliver(rng.IntN(120))
		c.Crash(2)
		deliver(rng.IntN(40))
		if err := c.Restart(2); err != nil {
			t.Fatal(err)
		}
		deliver(200_000)
		if v := s.Check(c); len(v) > 0 {
			t.Fatalf("seed %d: %v", seed, v)
		}
		for _, e := range c.Evidence() {
			t.Fatalf("seed %d: correct replica accused: %+v", seed, e)
		}
		for _, id := range []core.NodeID{1, 3, 4} {
			if len(suites.ABADecisions(c)[id]) != 1 {
				t.Fatalf("seed %d: replica %d did not decide", seed, id)
			}
		}
	}
}

// mvbaCoins is the fixed-coin schedule mvba.DefaultParams gives its ABAs.
var mvbaCoins = []bool{true, false}

// Optimistic randomness (Params.FixedCoins = [true, false], as mvba runs
// its ABAs): agreement, validity and termination under f Byzantine
// replicas of every behaviour and the adversarial scheduler, as with a
// threshold coin in every round — the adversary knows the first two coins
// from the start.
func TestFixedCoinsPropertiesUnderByzantineReplicas(t *testing.T) {
	simtest.Run(t, abaCampaign(suites.ABA(suites.Options{ABAFixedCoins: mvbaCoins}), simtest.Seeds(300)))
}

// With mvba's fixed coins a unanimous input decides without signing,
// combining or checking a single coin share: 1 in round 1 (the candidate's
// proposal is out), 0 in round 2 (nobody holds it).
func TestFixedCoinsDecideUnanimousInputWithoutCoin(t *testing.T) {
	for _, in := range []struct {
		value bool
		round uint64
	}{{true, 1}, {false, 2}} {
		for _, size := range []sim.Size{{N: 4, F: 1}, {N: 7, F: 2}} {
			for seed := uint64(0); seed < 20; seed++ {
				unanimousWithoutCoin(t, size, seed, in.value, in.round)
			}
		}
	}
}

func unanimousWithoutCoin(t *testing.T, size sim.Size, seed uint64, value bool, round uint64) {
	t.Helper()
	s := suites.ABA(suites.Options{ABAFixedCoins: mvbaCoins})
	g := core.MustGroup(size.N, size.F, core.Async)
	c, err := sim.NewCluster(s.Suite, g, seed, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range g.Members() {
		c.Input(id, core.Input{Instance: suites.ABAInstance, Value: value})
	}
	rng := rand.New(rand.NewPCG(seed, 3))
	for len(c.Pending()) > 0 {
		c.Deliver(rng.IntN(len(c.Pending())))
	}
	for _, id := range g.Members() {
		ds := suites.ABADecisions(c)[id]
		if len(ds) != 1 || ds[0].Value != value || ds[0].Round != round {
			t.Fatalf("n=%d seed %d: replica %d decided %+v, want %v in round %d", size.N, seed, id, ds, value, round)
		}
		if ops := s.Core(id).Ops(); ops.SharesSigned != 0 || ops.Combines != 0 {
			t.Fatalf("n=%d seed %d: replica %d did coin work: %+v", size.N, seed, id, ops)
		}
	}
}
