package suites

import (
	"fmt"
	"math/rand/v2"

	"github.com/maftia/maftia/agreement/aba"
	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/crypto/coin"
	"github.com/maftia/maftia/sim"
	"github.com/maftia/maftia/wire"
)

func init() { register("aba", func(o Options) *sim.Suite { return ABA(o).Suite }) }

// ABAInstance is the instance every replica of the aba suite runs.
const ABAInstance core.InstanceID = "aba:1"

// ABASuite is the aba suite plus access to the correct cores of the
// current run (for round statistics, crypto counts and the halting check).
type ABASuite struct {
	*sim.Suite
	keys  *coinKeys
	cores map[core.NodeID]*aba.ABA
}

// Core returns replica id's instance in the current run (nil before it
// was created).
func (s *ABASuite) Core(id core.NodeID) *aba.ABA { return s.cores[id] }

// abaParams builds replica id's parameters, applying a broken variant.
func abaParams(keys *coinKeys, g core.Group, id core.NodeID, o Options) aba.Params {
	p := aba.DefaultParams(g, id, keys.coin, keys.sks[id-1])
	p.FixedCoins = o.ABAFixedCoins
	switch o.Broken {
	case "fixed-coin": // skips the coin: always 0
		p.UnsafeCoin = func(uint64, uint8) uint8 { return 0 }
	case "local-coin": // skips the coin: the replica's own estimate
		p.UnsafeCoin = func(_ uint64, est uint8) uint8 { return est }
	case "own-vals": // decides on its own AUX-phase vals, not the CONF sets
		p.UnsafeOwnVals = true
	case "no-conf": // MMR with a threshold coin and no CONF round
		p.UnsafeSkipConf = true
	}
	return p
}

// ABA is the suite for binary agreement. Inputs are unanimous 0, unanimous
// 1 or split at random; Byzantine replicas get inputs too (their wrappers
// decide what to do with them). Broken variants: "fixed-coin" and
// "local-coin" replace the threshold coin.
func ABA(o Options) *ABASuite {
	s := &ABASuite{cores: map[core.NodeID]*aba.ABA{}}
	host := func(id core.NodeID, g core.Group, records []core.Record) (core.Protocol, error) {
		if s.keys == nil || s.keys.coin.PublicKey().N() != g.N() {
			return nil, fmt.Errorf("suites: aba keys not dealt for %s", g)
		}
		return core.NewMux(1, func(inst core.InstanceID) (core.Protocol, error) {
			if inst != ABAInstance {
				return nil, core.ErrNoInstance
			}
			a, err := aba.Recover(inst, abaParams(s.keys, g, id, o), records)
			if err != nil {
				return nil, err
			}
			s.cores[id] = a
			return a, nil
		}, 64, 1<<20), nil
	}
	s.Suite = &sim.Suite{
		Name:       "aba",
		Resilience: core.Async,
		NewReplica: func(id core.NodeID, g core.Group) (core.Protocol, error) { return host(id, g, nil) },
		Recover:    host,
		Services: func(g core.Group, seed uint64) map[string]sim.Service {
			keys, err := dealCoin(g.N(), g.F(), seed)
			if err != nil {
				panic(err) // n and f come from the campaign, not from outside
			}
			s.keys, s.cores = keys, map[core.NodeID]*aba.ABA{}
			return nil
		},
		Start: func(c *sim.Cluster) {
			mode := c.Rng.IntN(3)
			for _, id := range c.Group.Members() {
				v := mode == 1
				if mode == 2 {
					v = c.Rng.IntN(2) == 1
				}
				c.Input(id, core.Input{Instance: ABAInstance, Value: v})
			}
		},
		Describe: func(_ core.InstanceID, p []byte) string { return aba.Describe(p) },
		Mutate:   mutateABA,
		AltInput: func(_ *rand.Rand, in core.Input) core.Input {
			v, _ := in.Value.(bool)
			return core.Input{Instance: in.Instance, Value: !v}
		},
		Check:      func(c *sim.Cluster) []string { return checkABA(c) },
		Terminated: func(c *sim.Cluster) bool { return s.terminated(c) },
	}
	return s
}

// CoinBit is the coin of round r of the suite's instance in the current
// run, computed from the first f+1 key shares: what a scheduler that
// controls f Byzantine replicas knows once one correct replica released
// its share (tests use it for the steered-AUX adversary, never earlier).
func (s *ABASuite) CoinBit(r uint64) uint8 {
	name := aba.CoinName(ABAInstance, r)
	f := s.keys.coin.PublicKey().Threshold()
	shares := make([]coin.Share, f)
	for i := range shares {
		shares[i] = coin.ShareFor(s.keys.sks[i], name)
	}
	v, _, err := s.keys.coin.Toss(shares, name)
	if err != nil {
		panic(err)
	}
	return v.Bit()
}

// ABADoubleVoter sends every BVAL and AUX with both bits and every CONF
// with all three value sets, to everyone, leaving it to the scheduler which
// version each replica counts first (the Byzantine replica of the
// steered-AUX attack, ATTACKS.md row 4).
type ABADoubleVoter struct{}

func (ABADoubleVoter) Name() string { return "double-voter" }
func (ABADoubleVoter) Wrap(id core.NodeID, inner core.Protocol, x *sim.ByzContext) core.Protocol {
	return &rewriter{inner: inner, f: func(s core.Send, out *core.Output) {
		m, err := aba.Decode(s.Payload)
		if err != nil {
			out.Sends = append(out.Sends, s)
			return
		}
		switch m.Kind {
		case wire.ABA_BVAL, wire.ABA_AUX:
			for v := uint32(0); v < 2; v++ {
				out.Broadcast(s.Instance, aba.Encode(&wire.ABA{Kind: m.Kind, Round: m.Round, Value: v}))
			}
		case wire.ABA_CONF:
			for v := uint32(1); v <= 3; v++ {
				out.Broadcast(s.Instance, aba.Encode(&wire.ABA{Kind: m.Kind, Round: m.Round, Value: v}))
			}
		default:
			out.Sends = append(out.Sends, s)
		}
	}}
}

// ABABehaviours is every simulator behaviour plus the ABA-specific liar.
func ABABehaviours() []sim.Behaviour { return append(sim.AllBehaviours(), ABALiar{}) }

// mutateABA: another bit or set, round ±1, BVAL↔AUX, or a forged coin share.
func mutateABA(rng *rand.Rand, _ core.InstanceID, p []byte) []byte {
	m, err := aba.Decode(p)
	if err != nil {
		return p
	}
	switch rng.IntN(4) {
	case 0:
		if m.Round > 1 && rng.IntN(2) == 0 {
			m.Round--
		} else if m.Kind != wire.ABA_TERM {
			m.Round++
		}
	case 1:
		switch m.Kind {
		case wire.ABA_BVAL:
			m.Kind = wire.ABA_AUX
		case wire.ABA_AUX:
			m.Kind = wire.ABA_BVAL
		}
	default:
		switch m.Kind {
		case wire.ABA_CONF:
			m.Value = 1 + (m.Value+uint32(rng.IntN(2)))%3
		case wire.ABA_COIN:
			m.Share = forgeShare(m.Share)
		default:
			m.Value ^= 1
		}
	}
	return aba.Encode(m)
}

// ABALiar is the protocol-specific attacker of ATTACKS.md rows 5 and 7: it
// runs the correct protocol but sends each vote with conflicting values to
// the two halves of the group (BVAL, AUX and TERM with both bits, CONF with
// different sets) and a forged coin share (valid header, wrong point).
type ABALiar struct{}

func (ABALiar) Name() string { return "aba-liar" }
func (ABALiar) Wrap(id core.NodeID, inner core.Protocol, x *sim.ByzContext) core.Protocol {
	return &rewriter{inner: inner, f: func(s core.Send, out *core.Output) {
		m, err := aba.Decode(s.Payload)
		if err != nil || s.To != core.Everyone {
			out.Sends = append(out.Sends, s)
			return
		}
		if m.Kind == wire.ABA_COIN {
			m.Share = forgeShare(m.Share)
			out.Broadcast(s.Instance, aba.Encode(m))
			return
		}
		alt := &wire.ABA{Kind: m.Kind, Round: m.Round, Value: m.Value ^ 1}
		if m.Kind == wire.ABA_CONF {
			alt.Value = 1 + m.Value%3
		}
		for _, to := range x.Group.Members() {
			if x.Rng.IntN(2) == 0 {
				out.SendTo(to, s.Instance, s.Payload)
			} else {
				out.SendTo(to, s.Instance, aba.Encode(alt))
			}
		}
	}}
}

// rewriter runs a correct core and rewrites its sends through f.
type rewriter struct {
	inner   core.Protocol
	scratch core.Output
	f       func(s core.Send, out *core.Output)
}

func (t *rewriter) Step(ev core.Event, out *core.Output) error {
	t.scratch.Reset()
	if err := t.inner.Step(ev, &t.scratch); err != nil {
		return nil
	}
	out.Persist = append(out.Persist, t.scratch.Persist...)
	out.Deliveries = append(out.Deliveries, t.scratch.Deliveries...)
	for _, s := range t.scratch.Sends {
		t.f(s, out)
	}
	return nil
}

// ABADecisions maps each correct replica to its decisions.
func ABADecisions(c *sim.Cluster) map[core.NodeID][]aba.Decision {
	d := map[core.NodeID][]aba.Decision{}
	for _, id := range c.Correct() {
		for _, x := range c.Deliveries(id) {
			if dec, ok := x.Value.(aba.Decision); ok && x.Instance == ABAInstance {
				d[id] = append(d[id], dec)
			}
		}
	}
	return d
}

func checkABA(c *sim.Cluster) []string {
	var v []string
	proposed := map[bool]bool{}
	for _, id := range c.Correct() {
		for _, in := range c.Inputs(id) {
			if b, ok := in.Value.(bool); ok {
				proposed[b] = true
			}
		}
	}
	var first *aba.Decision
	var firstBy core.NodeID
	for id, ds := range ABADecisions(c) {
		if len(ds) > 1 {
			v = append(v, fmt.Sprintf("integrity: replica %d decided %d times", id, len(ds)))
		}
		d := ds[0]
		if !proposed[d.Value] {
			v = append(v, fmt.Sprintf("validity: replica %d decided %v, which no correct replica proposed", id, d.Value))
		}
		if first == nil {
			first, firstBy = &d, id
		} else if first.Value != d.Value {
			v = append(v, fmt.Sprintf("agreement: replica %d decided %v but %d decided %v", firstBy, first.Value, id, d.Value))
		}
	}
	return v
}

// terminated: every correct replica decided and halted (no lingering
// instance: it saw 2f+1 TERMs).
func (s *ABASuite) terminated(c *sim.Cluster) bool {
	d := ABADecisions(c)
	for _, id := range c.Correct() {
		if len(d[id]) == 0 {
			return false
		}
		if a := s.cores[id]; a == nil || !a.Finished() {
			return false
		}
	}
	return true
}
