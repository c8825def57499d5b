package suites

import (
	"bytes"
	"fmt"
	"math/rand/v2"

	"github.com/maftia/maftia/agreement/mvba"
	"github.com/maftia/maftia/broadcast/rbc"
	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/sim"
	"github.com/maftia/maftia/wire"
)

func init() { register("mvba", func(o Options) *sim.Suite { return MVBA(o).Suite }) }

// MVBAInstance is the instance every replica of the mvba suite runs.
const MVBAInstance core.InstanceID = "mvba:1"

// MVBAValid is the suite's external-validity predicate: values start
// with "ok:".
func MVBAValid(v []byte) bool { return bytes.HasPrefix(v, []byte("ok:")) }

// MVBASuite is the mvba suite plus access to the current run's cores.
type MVBASuite struct {
	*sim.Suite
	keys  *coinKeys
	cores map[core.NodeID]*mvba.MVBA
}

// Core returns replica id's instance in the current run.
func (s *MVBASuite) Core(id core.NodeID) *mvba.MVBA { return s.cores[id] }

// MVBA is the suite for multivalued validated agreement: every replica
// proposes a valid value; Byzantine ones may propose invalid ones
// (MVBAInvalidProposer). Broken variant "accept-invalid" skips the
// validity predicate on received proposals.
func MVBA(o Options) *MVBASuite {
	s := &MVBASuite{cores: map[core.NodeID]*mvba.MVBA{}}
	host := func(id core.NodeID, g core.Group) (core.Protocol, error) {
		if s.keys == nil || s.keys.coin.PublicKey().N() != g.N() {
			return nil, fmt.Errorf("suites: mvba keys not dealt for %s", g)
		}
		return core.NewMux(1, func(inst core.InstanceID) (core.Protocol, error) {
			if inst != MVBAInstance {
				return nil, core.ErrNoInstance
			}
			p := mvba.DefaultParams(g, id, s.keys.coin, s.keys.sks[id-1], MVBAValid)
			p.UnsafeAcceptInvalid = o.Broken == "accept-invalid"
			if o.AllCoins {
				p.FixedFirstCandidate, p.ABAFixedCoins = false, nil
			}
			m, err := mvba.New(inst, p)
			if err != nil {
				return nil, err
			}
			s.cores[id] = m
			return m, nil
		}, 256, 4<<20), nil
	}
	value := func(rng *rand.Rand, id core.NodeID) []byte {
		if o.PayloadSize > 0 {
			b := append([]byte("ok:"), make([]byte, o.PayloadSize)...)
			for i := 3; i < len(b); i++ {
				b[i] = byte(rng.Uint32())
			}
			return b
		}
		return fmt.Appendf(nil, "ok:%d-%d", id, rng.IntN(1000))
	}
	s.Suite = &sim.Suite{
		Name:       "mvba",
		Resilience: core.Async,
		NewReplica: host,
		Services: func(g core.Group, seed uint64) map[string]sim.Service {
			keys, err := dealCoin(g.N(), g.F(), seed)
			if err != nil {
				panic(err)
			}
			s.keys, s.cores = keys, map[core.NodeID]*mvba.MVBA{}
			return nil
		},
		Start: func(c *sim.Cluster) {
			for _, id := range c.Group.Members() {
				c.Input(id, core.Input{Instance: MVBAInstance, Value: value(c.Rng, id)})
			}
		},
		Describe: mvba.Describe,
		Mutate:   mutateMVBA,
		AltInput: func(rng *rand.Rand, in core.Input) core.Input {
			v, _ := in.Value.([]byte)
			return core.Input{Instance: in.Instance, Value: append(bytes.Clone(v), "-twin"...)}
		},
		Check:      checkMVBA,
		Terminated: func(c *sim.Cluster) bool { return s.terminated(c) },
	}
	return s
}

// MVBABehaviours is every simulator behaviour plus the invalid proposer.
func MVBABehaviours() []sim.Behaviour {
	return append(sim.AllBehaviours(), MVBAInvalidProposer{})
}

func mutateMVBA(rng *rand.Rand, inst core.InstanceID, p []byte) []byte {
	name, _, _ := inst.Last()
	switch name {
	case "prop":
		if m, err := rbc.Decode(p, wire.DefaultMaxPayload); err == nil && m.Kind != wire.RBC_READY && rng.IntN(2) == 0 {
			m.Value = append([]byte("bad:"), m.Value...) // an invalid value
			return rbc.Encode(m)
		}
		return mutateRBC(rng, inst, p)
	case "aba":
		return mutateABA(rng, inst, p)
	}
	m, err := mvba.Decode(p)
	if err != nil {
		return p
	}
	switch m.Kind {
	case wire.MVBA_VOTE:
		m.Vote ^= 1
	case wire.MVBA_COIN:
		m.Share = forgeShare(m.Share)
	case wire.MVBA_DECIDE:
		if rng.IntN(2) == 0 {
			m.Proposer = 1 + m.Proposer%4
		} else {
			m.Value = bytes.Clone(m.Value)
			m.Value[rng.IntN(len(m.Value))] ^= 1
		}
	}
	return mvba.Encode(m)
}

// MVBAInvalidProposer runs the correct protocol but r-broadcasts an
// invalid proposal (one that fails the validity predicate) in place of its
// own.
type MVBAInvalidProposer struct{}

func (MVBAInvalidProposer) Name() string { return "invalid-proposer" }
func (MVBAInvalidProposer) Wrap(id core.NodeID, inner core.Protocol, x *sim.ByzContext) core.Protocol {
	own := MVBAInstance.ChildN("prop", uint64(id))
	return &rewriter{inner: inner, f: func(s core.Send, out *core.Output) {
		if s.Instance == own {
			if m, err := rbc.Decode(s.Payload, wire.DefaultMaxPayload); err == nil && m.Kind == wire.RBC_SEND {
				m.Value = fmt.Appendf(nil, "bad:%d", id)
				s.Payload = rbc.Encode(m)
			}
		}
		out.Sends = append(out.Sends, s)
	}}
}

// MVBADecisions maps each correct replica to its decisions.
func MVBADecisions(c *sim.Cluster) map[core.NodeID][]mvba.Decision {
	d := map[core.NodeID][]mvba.Decision{}
	for _, id := range c.Correct() {
		for _, x := range c.Deliveries(id) {
			if dec, ok := x.Value.(mvba.Decision); ok && x.Instance == MVBAInstance {
				d[id] = append(d[id], dec)
			}
		}
	}
	return d
}

func checkMVBA(c *sim.Cluster) []string {
	var v []string
	var first *mvba.Decision
	var firstBy core.NodeID
	for _, id := range c.Correct() {
		ds := MVBADecisions(c)[id]
		if len(ds) == 0 {
			continue
		}
		if len(ds) > 1 {
			v = append(v, fmt.Sprintf("integrity: replica %d decided %d times", id, len(ds)))
		}
		d := ds[0]
		if !MVBAValid(d.Value) {
			v = append(v, fmt.Sprintf("external validity: replica %d decided invalid %q", id, d.Value))
		}
		if c.IsCorrect(d.Proposer) {
			in := c.Inputs(d.Proposer)
			if len(in) == 0 || !bytes.Equal(in[0].Value.([]byte), d.Value) {
				v = append(v, fmt.Sprintf("integrity: replica %d decided %q as correct %d's proposal, which it did not propose", id, d.Value, d.Proposer))
			}
		}
		if first == nil {
			first, firstBy = &d, id
		} else if !bytes.Equal(first.Value, d.Value) {
			v = append(v, fmt.Sprintf("agreement: replica %d decided %q but %d decided %q", firstBy, first.Value, id, d.Value))
		}
	}
	return v
}

func (s *MVBASuite) terminated(c *sim.Cluster) bool {
	d := MVBADecisions(c)
	for _, id := range c.Correct() {
		if len(d[id]) == 0 {
			return false
		}
		if m := s.cores[id]; m == nil || !m.Finished() {
			return false
		}
	}
	return true
}
