package suites

import (
	"fmt"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/hybrid"
	"github.com/maftia/maftia/sim"
)

func init() {
	register("hybrid-vconsensus", func(o Options) *sim.Suite { return hybridVC(o, false) })
	register("hybrid-consensus", func(o Options) *sim.Suite { return hybridVC(o, true) })
}

var vcRoot = core.Root("vc")

// vcTStart is the tstart of round 0 in the hybrid (vector) consensus suites.
const vcTStart = 60

func hybridVC(o Options, consensus bool) *sim.Suite {
	name := "hybrid-vconsensus"
	if consensus {
		name = "hybrid-consensus"
	}
	s := hybridSuite(name, core.Async) // n ≥ 3f+1, as the papers state
	s.Attacks = append(s.Attacks, EarlyRetransmit{Instances: func(g core.Group) []core.InstanceID {
		var ids []core.InstanceID
		for r := uint64(0); r < 3; r++ {
			for _, id := range g.Members() {
				ids = append(ids, vcRoot.ChildN("r", r).ChildN("brm", uint64(id)))
			}
		}
		return ids
	}})
	s.NewReplica = func(id core.NodeID, g core.Group) (core.Protocol, error) {
		p := hybrid.DefaultVCParams(g, id, vcTStart)
		var v *hybrid.VConsensus
		var err error
		if consensus {
			v, err = hybrid.NewConsensus(vcRoot, p)
		} else {
			v, err = hybrid.NewVConsensus(vcRoot, p)
		}
		if err != nil {
			return nil, err
		}
		if o.Broken == "decide-on-data" {
			return &dataVectorDecider{VConsensus: v, g: g}, nil
		}
		return v, nil
	}
	s.Start = func(c *sim.Cluster) {
		// Proposals from a small set, all equal half the time (so
		// consensus validity is exercised).
		same := c.Rng.IntN(2) == 0
		for _, id := range c.Group.Members() {
			v := "a"
			if !same {
				v = string(rune('a' + c.Rng.IntN(3)))
			}
			c.Input(id, core.Input{Instance: vcRoot, Value: []byte(v)})
		}
	}
	s.Check = checkVC
	s.Terminated = func(c *sim.Cluster) bool {
		for _, id := range c.Correct() {
			if len(c.Deliveries(id)) == 0 {
				return false
			}
		}
		return true
	}
	return s
}

// checkVC checks agreement, integrity and the validity of vector
// consensus (≥ f+1 entries from correct replicas, each its proposal) or of
// consensus (unanimity; a decided value was proposed by a correct replica).
func checkVC(c *sim.Cluster) []string {
	var v []string
	var first string
	var firstBy core.NodeID
	inputs := map[core.NodeID]string{}
	allSame, common := true, ""
	for i, id := range c.Correct() {
		if in := c.Inputs(id); len(in) > 0 {
			inputs[id] = string(in[0].Value.([]byte))
			if i == 0 {
				common = inputs[id]
			} else if inputs[id] != common {
				allSame = false
			}
		}
	}
	for _, id := range c.Correct() {
		ds := c.Deliveries(id)
		if len(ds) > 1 {
			v = append(v, fmt.Sprintf("integrity: replica %d decided %d times", id, len(ds)))
		}
		if len(ds) == 0 {
			continue
		}
		got := fmt.Sprint(ds[0].Value)
		if firstBy == 0 {
			first, firstBy = got, id
		} else if got != first {
			v = append(v, fmt.Sprintf("agreement: %d decided %.80s but %d decided %.80s", firstBy, first, id, got))
		}
		switch d := ds[0].Value.(type) {
		case hybrid.Vector:
			present, fromCorrect := 0, 0
			for i, ok := range d.Present {
				if !ok {
					continue
				}
				present++
				if in, isCorrect := inputs[core.NodeID(i+1)]; isCorrect {
					fromCorrect++
					if string(d.Values[i]) != in {
						v = append(v, fmt.Sprintf("validity: entry %d is %q, not correct replica %d's proposal %q", i+1, d.Values[i], i+1, in))
					}
				}
			}
			if fromCorrect < c.Group.F()+1 {
				v = append(v, fmt.Sprintf("vector validity: only %d of %d entries from correct replicas", fromCorrect, present))
			}
		case hybrid.Decision:
			if allSame && (d.Default || string(d.Value) != common) {
				v = append(v, fmt.Sprintf("validity: all correct proposed %q but %d decided %s", common, id, d))
			}
			if !d.Default {
				proposed := false
				for _, in := range inputs {
					proposed = proposed || in == string(d.Value)
				}
				if !proposed {
					v = append(v, fmt.Sprintf("validity: %d decided %s, which no correct replica proposed", id, d))
				}
			}
		default:
			v = append(v, fmt.Sprintf("replica %d delivered %T", id, ds[0].Value))
		}
	}
	return v
}

// dataVectorDecider is a deliberately broken vector consensus that
// decides on the first 2f+1 payload messages (DATA) of round 0, without
// the TTCB's agreement on them.
type dataVectorDecider struct {
	*hybrid.VConsensus
	g    core.Group
	vals map[core.NodeID][]byte
	done bool
}

func (d *dataVectorDecider) Step(ev core.Event, out *core.Output) error {
	var scratch core.Output
	if err := d.VConsensus.Step(ev, &scratch); err != nil {
		return err
	}
	forward(&scratch, out)
	if d.vals == nil {
		d.vals = map[core.NodeID][]byte{}
	}
	if m, ok := ev.(core.Message); ok && !d.done {
		if msg, err := hybrid.Decode(m.Payload, hybrid.Limits{MaxValue: 1 << 20, MaxN: 64}); err == nil && msg.Kind == hybrid.KindData {
			if _, s, ok := m.Instance.Last(); ok && d.g.Contains(core.NodeID(s)) {
				d.vals[core.NodeID(s)] = msg.Value
			}
		}
		if len(d.vals) >= 2*d.g.F()+1 {
			d.done = true
			vec := hybrid.Vector{Present: make([]bool, d.g.N()), Values: make([][]byte, d.g.N())}
			for s, val := range d.vals {
				vec.Present[s-1], vec.Values[s-1] = true, val
			}
			out.Deliver(vcRoot, vec)
		}
	}
	return nil
}
