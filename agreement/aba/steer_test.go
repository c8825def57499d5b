package aba_test

import (
	"testing"

	"github.com/maftia/maftia/agreement/aba"
	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/sim"
	"github.com/maftia/maftia/sim/suites"
	"github.com/maftia/maftia/wire"
)

// steerer is the scheduler of the liveness attack on MMR with a threshold
// coin (MacBrough 2018, HoneyBadgerBFT issue #59; ATTACKS.md row 4), for
// n = 4 with replica 4 a double voter. It reads every message, and learns
// a round's coin only once a correct replica has released its share (the
// adversary then holds f+1 shares with its own). Per round, with the
// correct estimates split x, x, y: replica A (the first x) and B (the y)
// complete BVAL, AUX (and CONF) while everything to C (the other x) is
// held; once A's coin share is out the coin s is known, and C is steered to
// see ¬s first — its AUX, and so its own AUX-phase vals, become {¬s}.
// Against a replica that decides on its own vals, C keeps ¬s while A and B
// adopt s: the split x, x, y is rebuilt every round and nobody decides.
type steerer struct {
	suite  *suites.ABASuite
	seen   uint64
	est    map[uint64]map[core.NodeID]uint32 // round → replica → estimate
	coin   map[uint64]uint32
	aux    map[uint64]map[core.NodeID]bool // round → replicas that sent AUX
	maxAge uint64
}

type roles struct {
	a, b, c core.NodeID
	x, y    uint32
}

func (s *steerer) rolesFor(r uint64) (roles, bool) {
	e := s.est[r]
	if len(e) < 3 {
		return roles{}, false
	}
	for _, x := range []uint32{0, 1} {
		var xs, ys []core.NodeID
		for _, id := range []core.NodeID{1, 2, 3} {
			if e[id] == x {
				xs = append(xs, id)
			} else {
				ys = append(ys, id)
			}
		}
		if len(xs) == 2 && len(ys) == 1 {
			return roles{a: xs[0], b: ys[0], c: xs[1], x: x, y: 1 - x}, true
		}
	}
	return roles{}, false // unanimous: nothing to split
}

func (s *steerer) observe(pending []*sim.Packet) {
	newest := s.seen
	for _, p := range pending {
		if p.ID <= s.seen {
			continue
		}
		newest = max(newest, p.ID)
		m, err := aba.Decode(p.Payload)
		if err != nil || p.From == 4 {
			continue
		}
		switch m.Kind {
		case wire.ABA_BVAL: // a replica's first BVAL of a round is its estimate
			if s.est[m.Round] == nil {
				s.est[m.Round] = map[core.NodeID]uint32{}
			}
			if _, ok := s.est[m.Round][p.From]; !ok {
				s.est[m.Round][p.From] = m.Value
			}
		case wire.ABA_AUX:
			if s.aux[m.Round] == nil {
				s.aux[m.Round] = map[core.NodeID]bool{}
			}
			s.aux[m.Round][p.From] = true
		case wire.ABA_COIN: // a correct share is out: the coin is known
			if _, ok := s.coin[m.Round]; !ok {
				s.coin[m.Round] = uint32(s.suite.CoinBit(m.Round))
			}
		}
	}
	s.seen = newest
}

func (s *steerer) choose(pending []*sim.Packet) int {
	s.observe(pending)
	best, bestPrio := 0, 99
	for i, p := range pending {
		if p.ID+s.maxAge < s.seen {
			return i // eventual delivery
		}
		prio := 3
		if m, err := aba.Decode(p.Payload); err == nil && m.Kind != wire.ABA_TERM {
			ro, ok := s.rolesFor(m.Round)
			coin, known := s.coin[m.Round]
			switch {
			case !ok:
				prio = 4 // round not split (yet): after everything else
			case p.To == ro.c && !known:
				prio = 9 // C hears nothing of the round before the coin is out
			default:
				want := ro.x
				switch p.To {
				case ro.b:
					want = ro.y
				case ro.c:
					want = 1 - coin
				}
				v, single := m.Value, true
				if m.Kind == wire.ABA_CONF {
					v, single = m.Value>>1, m.Value != 3
				}
				switch {
				case m.Kind == wire.ABA_COIN || !single:
					prio = 1
				case v == want:
					prio = 0
				case !s.aux[m.Round][p.To]:
					prio = 8 // the other value only after the receiver's AUX
				default:
					prio = 2
				}
			}
		}
		if prio < bestPrio {
			best, bestPrio = i, prio
		}
	}
	return best
}

// steeredRun runs one instance under the steerer and returns the largest
// decision round (0 if some correct replica did not decide), the lowest
// round a correct replica reached, and the safety violations.
func steeredRun(t *testing.T, broken string, fixed []bool, seed uint64) (uint64, uint64, []string) {
	s := suites.ABA(suites.Options{Broken: broken, ABAFixedCoins: fixed})
	c, err := sim.NewCluster(s.Suite, core.MustGroup(4, 1, core.Async), seed,
		map[core.NodeID]sim.Behaviour{4: suites.ABADoubleVoter{}}, false)
	if err != nil {
		t.Fatal(err)
	}
	for id, v := range []bool{false, true, false, true} {
		c.Input(core.NodeID(id+1), core.Input{Instance: suites.ABAInstance, Value: v})
	}
	st := &steerer{suite: s, est: map[uint64]map[core.NodeID]uint32{}, coin: map[uint64]uint32{},
		aux: map[uint64]map[core.NodeID]bool{}, maxAge: 400}
	for steps := 0; len(c.Pending()) > 0 && steps < 10_000; steps++ {
		c.Deliver(st.choose(c.Pending()))
	}
	var w uint64
	reached := uint64(1 << 62)
	ds := suites.ABADecisions(c)
	for _, id := range c.Correct() {
		reached = min(reached, s.Core(id).Round())
	}
	for _, id := range c.Correct() {
		if len(ds[id]) == 0 {
			return 0, reached, s.Check(c)
		}
		w = max(w, ds[id][0].Round)
	}
	return w, reached, s.Check(c)
}

// The CONF round and the union rule have teeth (ATTACKS.md row 4): under
// the steering scheduler, MMR with a threshold coin and no CONF round, and
// a variant that keeps CONF but decides on its own AUX-phase vals, do not
// decide, while the protocol decides in a few rounds on every seed — also
// with its first two coins fixed (as mvba runs its ABAs), which the
// scheduler then knows from the start.
func TestSteeredAUXAttackNeedsConfUnion(t *testing.T) {
	const seeds = 10
	for _, variant := range []struct {
		broken string
		fixed  []bool
	}{{"", nil}, {"", mvbaCoins}, {"own-vals", nil}, {"no-conf", nil}} {
		broken, name := variant.broken, variant.broken
		if variant.fixed != nil {
			name = "fixed-coins" // the protocol, its first two coins fixed
		}
		stuck, worst, sum, rounds := 0, uint64(0), uint64(0), uint64(1<<62)
		for seed := uint64(0); seed < seeds; seed++ {
			w, reached, v := steeredRun(t, broken, variant.fixed, seed)
			if len(v) > 0 {
				t.Fatalf("%q seed %d: safety violated: %v", name, seed, v)
			}
			if w == 0 {
				stuck++
				rounds = min(rounds, reached)
			}
			worst, sum = max(worst, w), sum+w
		}
		if stuck > 0 {
			t.Logf("%-13q %d of %d schedules without a decision after 10,000 deliveries (every correct replica past round %d)", name, stuck, seeds, rounds-1)
		} else {
			t.Logf("%-13q all %d schedules decided: decision round mean %.1f, max %d", name, seeds, float64(sum)/seeds, worst)
		}
		switch {
		case broken == "" && stuck > 0:
			t.Errorf("%s: the protocol did not decide under the steering scheduler on %d seeds", name, stuck)
		case broken != "" && stuck < seeds/2:
			t.Errorf("%s: the attack stalled only %d of %d schedules", broken, stuck, seeds)
		}
	}
}
