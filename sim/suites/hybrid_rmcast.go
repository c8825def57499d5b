package suites

import (
	"bytes"
	"math/rand/v2"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/hybrid"
	"github.com/maftia/maftia/sim"
	"github.com/maftia/maftia/ttcb"
	"github.com/maftia/maftia/wire"
)

func init() { register("hybrid-rmcast", HybridRMulticast) }

// brmTStart is the tstart of every multicast in the hybrid-rmcast suite:
// inputs are given at the first steps of a run, well before it.
const brmTStart = 60

func brmInstance(s core.NodeID) core.InstanceID { return core.RootN("brm", uint64(s)) }

func brmHost(id core.NodeID, g core.Group, broken string) core.Protocol {
	return host(id, core.NewMux(1, func(inst core.InstanceID) (core.Protocol, error) {
		name, s, ok := inst.Last()
		if name != "brm" || !ok || !g.Contains(core.NodeID(s)) {
			return nil, core.ErrNoInstance
		}
		inner, err := hybrid.NewRMulticast(inst, hybrid.DefaultRMParams(g, id, core.NodeID(s), brmTStart))
		if err != nil {
			return nil, err
		}
		if broken == "deliver-on-data" {
			return &dataDeliverer{inner: inner}, nil
		}
		return inner, nil
	}, 64, 8<<20), false)
}

// dataDeliverer is a deliberately broken BRM-T that delivers the sender's
// payload message as soon as it arrives, without waiting for the TTCB's
// block agreement on its hash.
type dataDeliverer struct {
	inner *hybrid.RMulticast
	done  bool
}

func (d *dataDeliverer) Finished() bool { return d.inner.Finished() }

func (d *dataDeliverer) Step(ev core.Event, out *core.Output) error {
	var scratch core.Output
	if err := d.inner.Step(ev, &scratch); err != nil {
		return err
	}
	forward(&scratch, out)
	deliver := func(inst core.InstanceID, v []byte) {
		if !d.done {
			d.done = true
			out.Deliver(inst, hybrid.RMDelivery{Value: v})
		}
	}
	switch e := ev.(type) {
	case core.Message:
		if m, err := hybrid.Decode(e.Payload, hybrid.Limits{MaxValue: 1 << 20, MaxN: 64}); err == nil && m.Kind == hybrid.KindData {
			deliver(e.Instance, m.Value)
		}
	case core.Input:
		deliver(e.Instance, e.Value.([]byte))
	}
	for _, x := range scratch.Deliveries {
		deliver(x.Instance, x.Value.(hybrid.RMDelivery).Value)
	}
	return nil
}

// HybridRMulticast is the suite for BRM-T with the TTCB model as a local
// service: n ≥ f+2 payload replicas of which f are Byzantine (every
// generic behaviour plus a replica proposing a wrong hash to the TTCB and
// a sender that withholds its message from some replicas), correct TTCB.
func HybridRMulticast(o Options) *sim.Suite {
	s := hybridSuite("hybrid-rmcast", core.HybridMulticast)
	s.Attacks = append(s.Attacks, EarlyRetransmit{Instances: func(g core.Group) []core.InstanceID {
		var ids []core.InstanceID
		for _, id := range g.Members() {
			ids = append(ids, brmInstance(id))
		}
		return ids
	}})
	s.NewReplica = func(id core.NodeID, g core.Group) (core.Protocol, error) {
		return brmHost(id, g, o.Broken), nil
	}
	s.Start = func(c *sim.Cluster) { startBroadcasts(c, o, brmInstance) }
	s.Check = func(c *sim.Cluster) []string { return checkBroadcast(c, "agreement", rmOutcome) }
	s.Terminated = func(c *sim.Cluster) bool { return broadcastTerminated(c, brmInstance, true) }
	return s
}

// hybridSuite is what the hybrid suites share: the TTCB model as the
// "ttcb" service (its per-run state in Suite.State), traces, the message
// mutator, Twins inputs and the hybrid attacks.
func hybridSuite(name string, r core.Resilience) *sim.Suite {
	st := &ttcbState{}
	return &sim.Suite{
		Name: name, Resilience: r, State: st,
		Services: ttcbServices(st),
		Describe: func(_ core.InstanceID, p []byte) string { return hybrid.Describe(p) },
		Mutate:   mutateHybrid,
		AltInput: twinInput,
		Attacks:  hybridAttacks(st),
	}
}

// forward copies a wrapped core's sends, service requests and evidence
// (everything but deliveries, which broken variants make themselves).
func forward(scratch, out *core.Output) {
	out.Sends = append(out.Sends, scratch.Sends...)
	out.Requests = append(out.Requests, scratch.Requests...)
	out.Evidence = append(out.Evidence, scratch.Evidence...)
}

func rmOutcome(v any) string {
	if d, ok := v.(hybrid.RMDelivery); ok {
		return "payload:" + string(d.Value)
	}
	return bytesOutcome(v)
}

// mutateHybrid makes syntactically valid but wrong variants of this
// package's messages (ATTACKS row 6): another value, epoch±1, a swapped
// kind, another owner, a request dropped, duplicated or forged.
func mutateHybrid(rng *rand.Rand, _ core.InstanceID, p []byte) []byte {
	m, err := hybrid.Decode(p, hybrid.Limits{MaxValue: wire.DefaultMaxPayload, MaxRequest: wire.DefaultMaxPayload, MaxRequests: 1 << 16, MaxN: 64})
	if err != nil {
		return p
	}
	switch m.Kind {
	case hybrid.KindData, hybrid.KindRetransmit:
		if rng.IntN(4) == 0 {
			m.Kind = hybrid.KindData + hybrid.KindRetransmit - m.Kind
		} else {
			m.Value = append(bytes.Clone(m.Value), byte('A'+rng.IntN(26)))
		}
	case hybrid.KindFetch:
		m.Epoch += uint64(rng.IntN(3)) - 1
	default:
		switch rng.IntN(5) {
		case 0:
			m.Epoch++
		case 1:
			if m.Epoch > 0 {
				m.Epoch--
			}
		case 2:
			if len(m.Requests) > 0 {
				m.Requests = m.Requests[1:]
			} else {
				m.Requests = [][]byte{[]byte("ok:byz-" + string(rune('a'+rng.IntN(26))))}
			}
		case 3:
			m.Requests = append(append([][]byte{}, m.Requests...), []byte("bad:forged"))
		default:
			if len(m.Requests) > 0 {
				m.Requests = append(append([][]byte{}, m.Requests...), m.Requests[0])
			} else {
				m.Requests = [][]byte{[]byte("ok:byz-x")}
			}
		}
	}
	return hybrid.Encode(m)
}

// hybridAttacks are the protocol-specific Byzantine behaviours of the
// hybrid suites; with the run's TTCB state, also a host whose TTCB module
// crashes mid-run.
func hybridAttacks(st ...*ttcbState) []sim.Behaviour {
	b := []sim.Behaviour{WrongHash{}, Withhold{}}
	if len(st) > 0 {
		b = append(b, ModuleCrash{st: st[0], After: 12})
	}
	return b
}

// EarlyRetransmit is a replica that, on its first step, sends every
// replica a RETRANSMIT with junk for every multicast instance it can
// guess, before any tstart: an attempt to make correct replicas propose
// "nothing" before the sender's DATA arrives (and so keep them out of
// proposed-ok). It then behaves correctly.
type EarlyRetransmit struct {
	Instances func(core.Group) []core.InstanceID
}

func (EarlyRetransmit) Name() string { return "early-retransmit" }
func (e EarlyRetransmit) Wrap(_ core.NodeID, inner core.Protocol, x *sim.ByzContext) core.Protocol {
	return &earlyRetransmitter{inner: inner, insts: e.Instances(x.Group)}
}

type earlyRetransmitter struct {
	inner core.Protocol
	insts []core.InstanceID
}

func (e *earlyRetransmitter) Step(ev core.Event, out *core.Output) error {
	for _, inst := range e.insts {
		out.Broadcast(inst, hybrid.Encode(&hybrid.Message{Kind: hybrid.KindRetransmit, Value: []byte("junk")}))
	}
	e.insts = nil
	_ = e.inner.Step(ev, out)
	return nil
}

// ModuleCrash is a host whose replica behaves correctly but whose TTCB
// module crashes after the replica's After-th step (ttcb.Model.Crash):
// its requests are dropped and no reply reaches it any more — the one
// crash a TTCB module may suffer, charged to the f faulty hosts.
type ModuleCrash struct {
	st    *ttcbState
	After int
}

func (m ModuleCrash) Name() string { return "ttcb-crash" }
func (m ModuleCrash) Wrap(id core.NodeID, inner core.Protocol, _ *sim.ByzContext) core.Protocol {
	return &moduleCrasher{inner: inner, st: m.st, id: id, left: m.After}
}

type moduleCrasher struct {
	inner core.Protocol
	st    *ttcbState
	id    core.NodeID
	left  int
}

func (c *moduleCrasher) Step(ev core.Event, out *core.Output) error {
	if c.left--; c.left == 0 && c.st.model != nil {
		c.st.model.Crash(c.id)
	}
	_ = c.inner.Step(ev, out) // a faulty host's replica that broke itself carries on
	return nil
}

// WrongHash is a replica that proposes a different hash to the TTCB than
// the one its payload messages justify (ATTACKS row 6 against the wormhole
// interface): every TBAPropose value has one bit flipped.
type WrongHash struct{}

func (WrongHash) Name() string { return "wrong-hash" }
func (WrongHash) Wrap(_ core.NodeID, inner core.Protocol, x *sim.ByzContext) core.Protocol {
	return &requestRewriter{inner: inner, f: func(q core.ServiceRequest) core.ServiceRequest {
		if p, ok := q.Request.(ttcb.TBAPropose); ok {
			p.Value[x.Rng.IntN(32)] ^= 1 << x.Rng.IntN(8)
			q.Request = p
		}
		return q
	}}
}

type requestRewriter struct {
	inner core.Protocol
	f     func(core.ServiceRequest) core.ServiceRequest
}

func (r *requestRewriter) Step(ev core.Event, out *core.Output) error {
	scratch := stepInner(r.inner, ev, out)
	out.Sends = append(out.Sends, scratch.Sends...)
	for _, q := range scratch.Requests {
		out.Requests = append(out.Requests, r.f(q))
	}
	return nil
}

// Withhold is a replica that behaves correctly towards the TTCB but sends
// each payload message to only a random minority of the replicas (a
// sender that lets few replicas have its message, exercising recovery).
type Withhold struct{}

func (Withhold) Name() string { return "withhold" }
func (Withhold) Wrap(_ core.NodeID, inner core.Protocol, x *sim.ByzContext) core.Protocol {
	return &sendFilter{inner: inner, keep: func(to core.NodeID) bool { return x.Rng.IntN(3) == 0 }, g: x.Group}
}

type sendFilter struct {
	inner core.Protocol
	keep  func(core.NodeID) bool
	g     core.Group
}

func (s *sendFilter) Step(ev core.Event, out *core.Output) error {
	scratch := stepInner(s.inner, ev, out)
	out.Requests = append(out.Requests, scratch.Requests...)
	for _, m := range scratch.Sends {
		if m.To != core.Everyone {
			if s.keep(m.To) {
				out.Sends = append(out.Sends, m)
			}
			continue
		}
		for _, to := range s.g.Members() {
			if s.keep(to) {
				out.SendTo(to, m.Instance, m.Payload)
			}
		}
	}
	return nil
}

// stepInner runs a Byzantine wrapper's inner core and passes its
// persistence, deliveries and timers through; the wrapper rewrites the
// sends and requests it returns.
func stepInner(inner core.Protocol, ev core.Event, out *core.Output) *core.Output {
	var scratch core.Output
	_ = inner.Step(ev, &scratch) // a Byzantine replica that broke itself carries on
	out.Persist = append(out.Persist, scratch.Persist...)
	out.Deliveries = append(out.Deliveries, scratch.Deliveries...)
	out.Timers = append(out.Timers, scratch.Timers...)
	return &scratch
}
