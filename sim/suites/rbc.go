package suites

import (
	"bytes"
	"math/rand/v2"

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
	return &sim.Suite{
		Name:       "rbc",
		Resilience: core.Async,
		NewReplica: func(id core.NodeID, g core.Group) (core.Protocol, error) {
			return rbcHost(id, g, nil, o.Broken), nil
		},
		Recover: func(id core.NodeID, g core.Group, recs []core.Record) (core.Protocol, error) {
			return rbcHost(id, g, recs, o.Broken), nil
		},
		Start:    func(c *sim.Cluster) { startBroadcasts(c, o, rbcInstance) },
		Describe: func(_ core.InstanceID, p []byte) string { return rbc.Describe(p) },
		Mutate:   mutateRBC,
		AltInput: twinInput,
		Check:    func(c *sim.Cluster) []string { return checkBroadcast(c, "agreement", bytesOutcome) },
		Terminated: func(c *sim.Cluster) bool {
			return broadcastTerminated(c, rbcInstance, true)
		},
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
