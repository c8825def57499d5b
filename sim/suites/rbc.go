package suites

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/maftia/maftia/broadcast/rbc"
	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/sim"
	"github.com/maftia/maftia/wire"
)

func init() { register("rbc", RBC) }

// rbcInstance names the broadcast whose sender is s.
func rbcInstance(s core.NodeID) core.InstanceID { return core.RootN("rbc", uint64(s)) }

// rbcHost is a replica hosting one RBC instance per possible sender.
func rbcHost(id core.NodeID, g core.Group, records []core.Record, broken string) core.Protocol {
	return core.NewMux(1, func(inst core.InstanceID) (core.Protocol, error) {
		name, s, ok := inst.Last()
		if name != "rbc" || !ok || !g.Contains(core.NodeID(s)) {
			return nil, core.ErrNoInstance
		}
		p := rbc.DefaultParams(g, id, core.NodeID(s))
		var mine []core.Record
		for _, r := range records {
			if r.Instance == inst {
				mine = append(mine, r)
			}
		}
		inner, err := rbc.Recover(inst, p, mine)
		if err != nil {
			return nil, err
		}
		if broken == "deliver-on-first-echo" {
			return &earlyDeliverer{inner: inner}, nil
		}
		return inner, nil
	}, 64, 8<<20)
}

// earlyDeliverer is a deliberately broken RBC that delivers the payload of
// the first ECHO it receives, skipping Bracha's quorums.
type earlyDeliverer struct {
	inner core.Protocol
	done  bool
}

func (e *earlyDeliverer) Step(ev core.Event, out *core.Output) error {
	var scratch core.Output
	if err := e.inner.Step(ev, &scratch); err != nil {
		return err
	}
	scratch.Deliveries = nil
	out.Sends = append(out.Sends, scratch.Sends...)
	out.Evidence = append(out.Evidence, scratch.Evidence...)
	if m, ok := ev.(core.Message); ok && !e.done {
		if msg, err := rbc.Decode(m.Payload, 1<<20); err == nil && msg.Kind == wire.RBC_ECHO {
			e.done = true
			out.Deliver(m.Instance, msg.Value)
		}
	}
	return nil
}

// RBC is the suite for Bracha's reliable broadcast. Each run picks one
// sender or lets every replica broadcast concurrently; a Byzantine sender
// is chosen often so equivocating senders are well covered.
func RBC(o Options) *sim.Suite {
	payload := func(rng *rand.Rand, s core.NodeID) []byte {
		if o.PayloadSize > 0 {
			b := make([]byte, o.PayloadSize)
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			return b
		}
		return fmt.Appendf(nil, "v%d-%d", s, rng.IntN(1000))
	}
	return &sim.Suite{
		Name:       "rbc",
		Resilience: core.Async,
		NewReplica: func(id core.NodeID, g core.Group) (core.Protocol, error) {
			return rbcHost(id, g, nil, o.Broken), nil
		},
		Recover: func(id core.NodeID, g core.Group, recs []core.Record) (core.Protocol, error) {
			return rbcHost(id, g, recs, o.Broken), nil
		},
		Start: func(c *sim.Cluster) {
			members := c.Group.Members()
			if c.Rng.IntN(2) == 0 {
				for _, s := range members {
					c.Input(s, core.Input{Instance: rbcInstance(s), Value: payload(c.Rng, s)})
				}
				return
			}
			s := members[c.Rng.IntN(len(members))]
			if byz := byzantineIDs(c); len(byz) > 0 && c.Rng.IntN(2) == 0 {
				s = byz[c.Rng.IntN(len(byz))]
			}
			c.Input(s, core.Input{Instance: rbcInstance(s), Value: payload(c.Rng, s)})
		},
		Describe: func(_ core.InstanceID, p []byte) string { return rbc.Describe(p) },
		Mutate:   mutateRBC,
		AltInput: func(rng *rand.Rand, in core.Input) core.Input {
			v, _ := in.Value.([]byte)
			return core.Input{Instance: in.Instance, Value: append(bytes.Clone(v), "-twin"...)}
		},
		Check:      checkRBC,
		Terminated: rbcTerminated,
	}
}

// byzantineIDs lists the Byzantine replicas in increasing order.
func byzantineIDs(c *sim.Cluster) []core.NodeID {
	var ids []core.NodeID
	for _, id := range c.Group.Members() {
		if !c.IsCorrect(id) {
			ids = append(ids, id)
		}
	}
	return ids
}

func mutateRBC(rng *rand.Rand, _ core.InstanceID, p []byte) []byte {
	m, err := rbc.Decode(p, wire.DefaultMaxPayload)
	if err != nil {
		return p
	}
	switch rng.IntN(4) {
	case 0: // swap kind between SEND and ECHO
		if m.Kind == wire.RBC_SEND {
			m.Kind = wire.RBC_ECHO
		} else if m.Kind == wire.RBC_ECHO {
			m.Kind = wire.RBC_SEND
		}
	case 1: // READY for a payload never broadcast
		m = &wire.RBC{Kind: wire.RBC_READY, Digest: make([]byte, 32)}
		m.Digest[rng.IntN(32)] = byte(1 + rng.IntN(255))
	default: // another value or digest
		if m.Kind == wire.RBC_READY {
			m.Digest = bytes.Clone(m.Digest)
			m.Digest[rng.IntN(len(m.Digest))] ^= 1 << rng.IntN(8)
		} else {
			m.Value = append(bytes.Clone(m.Value), byte('A'+rng.IntN(26)))
		}
	}
	return rbc.Encode(m)
}

// rbcDeliveries maps instance → correct replica → delivered values.
func rbcDeliveries(c *sim.Cluster) map[core.InstanceID]map[core.NodeID][][]byte {
	d := map[core.InstanceID]map[core.NodeID][][]byte{}
	for _, id := range c.Correct() {
		for _, x := range c.Deliveries(id) {
			if d[x.Instance] == nil {
				d[x.Instance] = map[core.NodeID][][]byte{}
			}
			v, _ := x.Value.([]byte)
			d[x.Instance][id] = append(d[x.Instance][id], v)
		}
	}
	return d
}

func checkRBC(c *sim.Cluster) []string {
	var v []string
	all := rbcDeliveries(c)
	insts := make([]core.InstanceID, 0, len(all))
	for inst := range all {
		insts = append(insts, inst)
	}
	slices.Sort(insts)
	for _, inst := range insts {
		byReplica := all[inst]
		_, s, _ := inst.Last()
		sender := core.NodeID(s)
		var first []byte
		var firstBy core.NodeID
		for _, id := range c.Correct() {
			vals, ok := byReplica[id]
			if !ok {
				continue
			}
			if len(vals) > 1 { // integrity: at most once
				v = append(v, fmt.Sprintf("integrity: replica %d delivered %s %d times", id, inst, len(vals)))
			}
			if firstBy == 0 {
				first, firstBy = vals[0], id
			} else if !bytes.Equal(vals[0], first) { // agreement
				v = append(v, fmt.Sprintf("agreement: %s delivered %q at %d but %q at %d", inst, first, firstBy, vals[0], id))
			}
			if c.IsCorrect(sender) { // integrity: only what a correct sender sent
				in := c.Inputs(sender)
				if len(in) == 0 || !bytes.Equal(in[0].Value.([]byte), vals[0]) {
					v = append(v, fmt.Sprintf("integrity: %d delivered %q for %s, not the correct sender's input", id, vals[0], inst))
				}
			}
		}
	}
	return v
}

// rbcTerminated: validity (a correct sender's broadcast is delivered by all
// correct replicas) and totality (one correct delivery implies all).
func rbcTerminated(c *sim.Cluster) bool {
	d := rbcDeliveries(c)
	for _, s := range c.Correct() {
		if len(c.Inputs(s)) > 0 && len(d[rbcInstance(s)]) != len(c.Correct()) {
			return false
		}
	}
	for _, byReplica := range d {
		if len(byReplica) != len(c.Correct()) {
			return false
		}
	}
	return true
}
