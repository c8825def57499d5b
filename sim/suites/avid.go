package suites

import (
	"bytes"
	"math/rand/v2"

	"google.golang.org/protobuf/proto"

	"github.com/maftia/maftia/broadcast/avid"
	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/sim"
	"github.com/maftia/maftia/wire"
)

func init() { register("avid", AVID) }

// avidInstance names the AVID broadcast whose sender is s.
func avidInstance(s core.NodeID) core.InstanceID { return core.RootN("avid", uint64(s)) }

// AVIDRun is what one AVID run built, for benchmarks: every instance core
// of every replica and every prechecking host.
type AVIDRun struct {
	Instances map[core.NodeID][]*avid.AVID
	Hosts     map[core.NodeID]*prechecked
}

// Ops sums the work of the instances of the given replicas (Precheck calls
// count as proof checks: each verifies at most one proof).
func (r *AVIDRun) Ops(ids []core.NodeID) avid.Ops {
	var o avid.Ops
	for _, id := range ids {
		for _, a := range r.Instances[id] {
			x := a.Ops()
			o.ProofChecks += x.ProofChecks
			o.Encodes += x.Encodes
			o.Decodes += x.Decodes
		}
		if h := r.Hosts[id]; h != nil {
			o.ProofChecks += h.Prechecks
		}
	}
	return o
}

// avidSuite holds the per-run state of the AVID suite.
type avidSuite struct {
	o   Options
	run *AVIDRun
}

// LastAVIDRun returns the instances built by the last run of an AVID suite
// (for benchmarks), or nil for another suite.
func LastAVIDRun(s *sim.Suite) *AVIDRun {
	if st, ok := s.State.(*avidSuite); ok {
		return st.run
	}
	return nil
}

func (st *avidSuite) host(id core.NodeID, g core.Group, records []core.Record) core.Protocol {
	mux := core.NewMux(1, func(inst core.InstanceID) (core.Protocol, error) {
		name, s, ok := inst.Last()
		if name != "avid" || !ok || !g.Contains(core.NodeID(s)) {
			return nil, core.ErrNoInstance
		}
		p := avid.DefaultParams(g, id, core.NodeID(s))
		if st.o.PayloadSize > p.MaxPayload {
			p.MaxPayload = st.o.PayloadSize
		}
		var mine []core.Record
		for _, r := range records {
			if r.Instance == inst {
				mine = append(mine, r)
			}
		}
		inner, err := avid.Recover(inst, p, mine)
		if err != nil {
			return nil, err
		}
		st.run.Instances[id] = append(st.run.Instances[id], inner)
		if st.o.Broken == "skip-reencode" {
			return &noReencode{inner: inner, inst: inst, g: g, maxPayload: p.MaxPayload}, nil
		}
		return inner, nil
	}, 64, 8<<20)
	h := host(id, mux, st.o.InlineChecks)
	if pc, ok := h.(*prechecked); ok {
		st.run.Hosts[id] = pc
	}
	return h
}

// noReencode is a deliberately broken AVID that trusts the first f+1
// fragments it received for the delivered root and decodes them without
// the re-encoding check — as implementations that skip (or assert on) the
// check do. An inconsistent sender makes correct replicas diverge.
type noReencode struct {
	inner      core.Protocol
	inst       core.InstanceID
	g          core.Group
	maxPayload int
	order      map[avid.Digest][]int // fragment indices in arrival order, per root
	frags      map[avid.Digest]map[int][]byte
	readies    map[avid.Digest]map[core.NodeID]bool
}

func (b *noReencode) Step(ev core.Event, out *core.Output) error {
	if b.frags == nil {
		b.order, b.frags, b.readies = map[avid.Digest][]int{}, map[avid.Digest]map[int][]byte{}, map[avid.Digest]map[core.NodeID]bool{}
	}
	if m, ok := ev.(core.Message); ok && b.g.Contains(m.From) {
		if msg, err := avid.Decode(m.Payload, b.g, b.maxPayload); err == nil {
			root := avid.Digest(msg.Root)
			switch msg.Kind {
			case wire.AVID_ECHO:
				i := int(m.From) - 1
				if avid.VerifyProof(b.inst, b.g.N(), i, msg.Fragment, msg.Proof, root) == nil {
					if b.frags[root] == nil {
						b.frags[root] = map[int][]byte{}
					}
					if _, dup := b.frags[root][i]; !dup {
						b.frags[root][i] = msg.Fragment
						b.order[root] = append(b.order[root], i)
					}
				}
			case wire.AVID_READY:
				if b.readies[root] == nil {
					b.readies[root] = map[core.NodeID]bool{}
				}
				b.readies[root][m.From] = true
			}
		}
	}
	var scratch core.Output
	if err := b.inner.Step(ev, &scratch); err != nil {
		return err
	}
	delivered := len(scratch.Deliveries) > 0
	scratch.Deliveries = nil
	out.Persist = append(out.Persist, scratch.Persist...)
	out.Sends = append(out.Sends, scratch.Sends...)
	out.Evidence = append(out.Evidence, scratch.Evidence...)
	if !delivered {
		return nil
	}
	for root, rs := range b.readies {
		if len(rs) < 2*b.g.F()+1 || len(b.order[root]) < b.g.F()+1 {
			continue
		}
		frags := make([][]byte, b.g.N())
		for _, i := range b.order[root][:b.g.F()+1] {
			frags[i] = b.frags[root][i]
		}
		if v, err := avid.DecodeFragments(b.g.F(), frags, b.maxPayload); err == nil {
			out.Deliver(b.inst, v)
		} else {
			out.Deliver(b.inst, avid.Invalid{Root: root})
		}
		return nil
	}
	return nil
}

func (b *noReencode) Finished() bool {
	f, ok := b.inner.(core.Finisher)
	return ok && f.Finished()
}

// AVID is the suite for erasure-coded reliable broadcast. Runs pick one
// sender (often a Byzantine one) or let every replica broadcast; besides
// the generic behaviours, the inconsistent-fragments attack has a
// Byzantine sender commit to fragments that are not one encoding.
func AVID(o Options) *sim.Suite {
	st := &avidSuite{o: o}
	return &sim.Suite{
		Name:       "avid",
		Resilience: core.Async,
		State:      st,
		Setup: func(core.Group, uint64) error {
			st.run = &AVIDRun{Instances: map[core.NodeID][]*avid.AVID{}, Hosts: map[core.NodeID]*prechecked{}}
			return nil
		},
		NewReplica: func(id core.NodeID, g core.Group) (core.Protocol, error) {
			return st.host(id, g, nil), nil
		},
		Recover: func(id core.NodeID, g core.Group, recs []core.Record) (core.Protocol, error) {
			return st.host(id, g, recs), nil
		},
		Start:    func(c *sim.Cluster) { startBroadcasts(c, o, avidInstance) },
		Describe: func(_ core.InstanceID, p []byte) string { return avid.Describe(p) },
		Mutate:   mutateAVID,
		AltInput: twinInput,
		Attacks:  []sim.Behaviour{InconsistentFragments{}},
		Check:    func(c *sim.Cluster) []string { return checkBroadcast(c, "agreement", avidOutcome) },
		Terminated: func(c *sim.Cluster) bool {
			return broadcastTerminated(c, avidInstance, true)
		},
	}
}

func mutateAVID(rng *rand.Rand, _ core.InstanceID, p []byte) []byte {
	var m wire.AVID
	if err := proto.Unmarshal(p, &m); err != nil || len(m.Root) != 32 {
		return p
	}
	switch rng.IntN(4) {
	case 0: // swap kind between SEND and ECHO
		if m.Kind == wire.AVID_SEND {
			m.Kind = wire.AVID_ECHO
		} else if m.Kind == wire.AVID_ECHO {
			m.Kind = wire.AVID_SEND
		}
	case 1: // READY for a root never committed
		m = wire.AVID{Kind: wire.AVID_READY, Root: make([]byte, 32)}
		m.Root[rng.IntN(32)] = byte(1 + rng.IntN(255))
	case 2: // another root
		m.Root = bytes.Clone(m.Root)
		m.Root[rng.IntN(32)] ^= 1 << rng.IntN(8)
	default: // a corrupted fragment (its proof no longer verifies)
		if len(m.Fragment) > 0 {
			m.Fragment = bytes.Clone(m.Fragment)
			m.Fragment[rng.IntN(len(m.Fragment))] ^= 1 << rng.IntN(8)
		} else {
			m.Root = bytes.Clone(m.Root)
			m.Root[0] ^= 0x80
		}
	}
	return avid.Encode(&m)
}

// InconsistentFragments is a Byzantine AVID sender that erasure-codes its
// payload m and another payload m' of the same length, then disperses a
// mix: some fragments of m, the others of m' (sometimes one fragment of a
// different size), committed by a Merkle tree over the mix, so every
// fragment carries a valid proof. Different (f+1)-subsets decode to
// different payloads; correct replicas must still agree (on ⊥).
type InconsistentFragments struct{}

func (InconsistentFragments) Name() string { return "inconsistent-fragments" }

func (InconsistentFragments) Wrap(id core.NodeID, inner core.Protocol, x *sim.ByzContext) core.Protocol {
	return &inconsistentSender{inner: inner, x: x}
}

type inconsistentSender struct {
	inner core.Protocol
	x     *sim.ByzContext
}

func (s *inconsistentSender) Step(ev core.Event, out *core.Output) error {
	in, ok := ev.(core.Input)
	v, isBytes := in.Value.([]byte)
	if !ok || !isBytes {
		_ = s.inner.Step(ev, out)
		return nil
	}
	g, rng := s.x.Group, s.x.Rng
	n, f := g.N(), g.F()
	other := bytes.Clone(v)
	if len(other) == 0 {
		other = []byte{0}
		v = []byte{1}
	}
	other[rng.IntN(len(other))] ^= byte(1 + rng.IntN(255))
	a, errA := avid.Fragments(n, f, v)
	b, errB := avid.Fragments(n, f, other)
	if errA != nil || errB != nil {
		return nil
	}
	mixed := make([][]byte, n)
	switch rng.IntN(3) {
	case 0: // first f+1 (the data fragments) of m, the rest of m'
		for i := range mixed {
			if i <= f {
				mixed[i] = a[i]
			} else {
				mixed[i] = b[i]
			}
		}
	case 1: // a random mix with at least one of each
		cut := 1 + rng.IntN(n-1)
		perm := rng.Perm(n)
		for k, i := range perm {
			if k < cut {
				mixed[i] = a[i]
			} else {
				mixed[i] = b[i]
			}
		}
	default: // m's fragments, one of them truncated
		copy(mixed, a)
		i := rng.IntN(n)
		if len(mixed[i]) > 1 {
			mixed[i] = mixed[i][:len(mixed[i])-1]
		} else {
			mixed[i] = append(bytes.Clone(mixed[i]), 0)
		}
	}
	root, proofs := avid.Commit(in.Instance, mixed)
	for i, to := range g.Members() {
		out.SendTo(to, in.Instance, avid.Encode(&wire.AVID{Kind: wire.AVID_SEND, Root: root[:], Fragment: mixed[i], Proof: proofs[i]}))
	}
	return nil
}

// avidOutcome renders a delivery so outcomes compare: the payload, or ⊥.
func avidOutcome(v any) string {
	if x, ok := v.(avid.Invalid); ok {
		return x.String()
	}
	return bytesOutcome(v)
}
