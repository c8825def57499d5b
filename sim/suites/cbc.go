package suites

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/maftia/maftia/broadcast/cbc"
	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/crypto/tsig"
	"github.com/maftia/maftia/sim"
	"github.com/maftia/maftia/wire"
)

func init() { register("cbc", CBC) }

// cbcInstance names the consistent broadcast whose sender is s.
func cbcInstance(s core.NodeID) core.InstanceID { return core.RootN("cbc", uint64(s)) }

// cbcDST separates the simulator's certificate keys from every other use.
var cbcDST = []byte("MAFTIA-CBC-V01-CS01-with-BLS12381G1_XMD:SHA-256_SSWU_RO_")

// CBCRun is what one CBC run built, for benchmarks.
type CBCRun struct {
	Key       *tsig.PublicKey
	Shares    []*tsig.SecretShare
	Instances map[core.NodeID][]*cbc.CBC
	Hosts     map[core.NodeID]*prechecked
	Byzantine []core.NodeID
}

// Ops sums the cryptographic work of the given replicas' instances;
// Precheck calls each verify one share or one certificate.
func (r *CBCRun) Ops(ids []core.NodeID) (cbc.Ops, int) {
	var o cbc.Ops
	pre := 0
	for _, id := range ids {
		for _, c := range r.Instances[id] {
			x := c.Ops()
			o.SignShares += x.SignShares
			o.ShareChecks += x.ShareChecks
			o.Combines += x.Combines
			o.SigChecks += x.SigChecks
			o.BadShares += x.BadShares
			o.BadFinals += x.BadFinals
		}
		if h := r.Hosts[id]; h != nil {
			pre += h.Prechecks
		}
	}
	return o, pre
}

type cbcSuite struct {
	o    Options
	run  *CBCRun
	keys map[[3]uint64]*CBCRun // dealt keys per (n, threshold, seed), reused on replay
}

// LastCBCRun returns what the last run of a CBC suite built, or nil.
func LastCBCRun(s *sim.Suite) *CBCRun {
	if st, ok := s.State.(*cbcSuite); ok {
		return st.run
	}
	return nil
}

// threshold is the certificate threshold: the key set's quorum n−f, or f
// for the deliberately broken variant.
func (st *cbcSuite) threshold(g core.Group) int {
	if st.o.Broken == "certify-with-f" {
		return max(g.F(), 1)
	}
	return g.Quorum()
}

// setup is the trusted dealer of one run: keys from a reader seeded by the
// run seed, so a seed replays exactly. Dealing is cached per (n, t, seed).
func (st *cbcSuite) setup(g core.Group, seed uint64) error {
	t := st.threshold(g)
	k := [3]uint64{uint64(g.N()), uint64(t), seed}
	if st.keys == nil || len(st.keys) > 64 {
		st.keys = map[[3]uint64]*CBCRun{}
	}
	dealt, ok := st.keys[k]
	if !ok {
		pub, shares, err := tsig.Deal(newSeededReader("cbc", seed), g.N(), t, cbcDST)
		if err != nil {
			return fmt.Errorf("cbc suite: deal: %w", err)
		}
		dealt = &CBCRun{Key: pub, Shares: shares}
		st.keys[k] = dealt
	}
	st.run = &CBCRun{Key: dealt.Key, Shares: dealt.Shares,
		Instances: map[core.NodeID][]*cbc.CBC{}, Hosts: map[core.NodeID]*prechecked{}}
	return nil
}

func (st *cbcSuite) params(g core.Group, id, sender core.NodeID) cbc.Params {
	p := cbc.DefaultParams(g, id, sender, st.run.Key, st.run.Shares[id-1])
	p.UnsafeAnyThreshold = st.o.Broken == "certify-with-f"
	if st.o.PayloadSize > p.MaxPayload {
		p.MaxPayload = st.o.PayloadSize
	}
	return p
}

func (st *cbcSuite) host(id core.NodeID, g core.Group, records []core.Record) core.Protocol {
	mux := core.NewMux(1, func(inst core.InstanceID) (core.Protocol, error) {
		name, s, ok := inst.Last()
		if name != "cbc" || !ok || !g.Contains(core.NodeID(s)) {
			return nil, core.ErrNoInstance
		}
		var mine []core.Record
		for _, r := range records {
			if r.Instance == inst {
				mine = append(mine, r)
			}
		}
		c, err := cbc.Recover(inst, st.params(g, id, core.NodeID(s)), mine)
		if err != nil {
			return nil, err
		}
		st.run.Instances[id] = append(st.run.Instances[id], c)
		return c, nil
	}, 64, 8<<20)
	h := host(id, mux)
	if pc, ok := h.(*prechecked); ok {
		st.run.Hosts[id] = pc
	}
	return h
}

// CBC is the suite for consistent broadcast with threshold-signature
// certificates. Keys are dealt once per run from the run seed. Besides the
// generic behaviours, the double-certify attack has a Byzantine sender try
// to get two payloads certified, helped by the other Byzantine replicas.
// Broken variant "certify-with-f": keys of threshold f, below the
// ⌈(n+f+1)/2⌉ consistency bound.
func CBC(o Options) *sim.Suite {
	st := &cbcSuite{o: o}
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
		Name:       "cbc",
		Resilience: core.Async,
		State:      st,
		Setup:      st.setup,
		NewReplica: func(id core.NodeID, g core.Group) (core.Protocol, error) {
			return st.host(id, g, nil), nil
		},
		Recover: func(id core.NodeID, g core.Group, recs []core.Record) (core.Protocol, error) {
			return st.host(id, g, recs), nil
		},
		Start: func(c *sim.Cluster) {
			st.run.Byzantine = byzantineIDs(c)
			members := c.Group.Members()
			if o.PayloadSize == 0 && c.Rng.IntN(2) == 0 {
				for _, s := range members {
					c.Input(s, core.Input{Instance: cbcInstance(s), Value: payload(c.Rng, s)})
				}
				return
			}
			s := members[c.Rng.IntN(len(members))]
			if byz := st.run.Byzantine; len(byz) > 0 && c.Rng.IntN(2) == 0 {
				s = byz[c.Rng.IntN(len(byz))]
			}
			c.Input(s, core.Input{Instance: cbcInstance(s), Value: payload(c.Rng, s)})
		},
		Describe: func(_ core.InstanceID, p []byte) string { return cbc.Describe(p) },
		Mutate:   st.mutate,
		AltInput: func(rng *rand.Rand, in core.Input) core.Input {
			v, _ := in.Value.([]byte)
			return core.Input{Instance: in.Instance, Value: append(bytes.Clone(v), "-twin"...)}
		},
		Attacks:    []sim.Behaviour{DoubleCertify{st: st}},
		Check:      checkCBC,
		Terminated: cbcTerminated,
	}
}

// mutate makes a syntactically valid but wrong CBC message: another value
// (SEND, FINAL: the certificate no longer matches), a share for another
// digest, a well-formed share whose point is wrong (signed on something
// else by the same replica, so only the pairing check catches it), or a
// certificate that is a valid curve point but no signature.
func (st *cbcSuite) mutate(rng *rand.Rand, inst core.InstanceID, p []byte) []byte {
	m, err := cbc.Decode(p, wire.DefaultMaxPayload)
	if err != nil {
		return p
	}
	junkPoint := func(idx uint32) []byte {
		if st.run == nil || idx < 1 || int(idx) > len(st.run.Shares) {
			return nil
		}
		s := tsig.SignShare(st.run.Shares[idx-1], fmt.Appendf(nil, "junk-%d", rng.Uint64()))
		return s.Marshal()
	}
	switch m.Kind {
	case wire.CBC_SEND:
		m.Value = append(bytes.Clone(m.Value), byte('A'+rng.IntN(26)))
	case wire.CBC_SHARE:
		if rng.IntN(2) == 0 {
			m.Digest = bytes.Clone(m.Digest)
			m.Digest[rng.IntN(len(m.Digest))] ^= 1 << rng.IntN(8)
		} else if j := junkPoint(uint32(m.Share[0])<<24 | uint32(m.Share[1])<<16 | uint32(m.Share[2])<<8 | uint32(m.Share[3])); j != nil {
			sh := bytes.Clone(m.Share)
			copy(sh[4+2*tsig.TagSize:], j[4+2*tsig.TagSize:]) // keep index, key id and tag
			m.Share = sh
		}
	case wire.CBC_FINAL:
		if rng.IntN(2) == 0 {
			m.Value = append(bytes.Clone(m.Value), byte('A'+rng.IntN(26)))
		} else if j := junkPoint(1); j != nil {
			m.Signature = j[4+2*tsig.TagSize:]
		}
	}
	return cbc.Encode(m)
}

// DoubleCertify is a Byzantine CBC replica. As the sender it sends SEND(m)
// to some correct replicas, SEND(m') to others and both to some (and both
// to every Byzantine replica), signs both itself, collects shares for both
// and broadcasts FINAL for every payload that reaches the threshold. As any
// other replica it signs a share for every payload a Byzantine sender
// sends it (colluding), and otherwise behaves correctly.
type DoubleCertify struct{ st *cbcSuite }

func (DoubleCertify) Name() string { return "double-certify" }

func (d DoubleCertify) Wrap(id core.NodeID, inner core.Protocol, x *sim.ByzContext) core.Protocol {
	return &doubleCertifier{st: d.st, id: id, inner: inner, x: x, own: cbcInstance(id)}
}

type doubleCertifier struct {
	st    *cbcSuite
	id    core.NodeID
	inner core.Protocol
	x     *sim.ByzContext
	own   core.InstanceID

	values map[cbc.Digest][]byte
	shares map[cbc.Digest][]tsig.Share
	final  map[cbc.Digest]bool
}

func (b *doubleCertifier) Step(ev core.Event, out *core.Output) error {
	run := b.st.run
	switch e := ev.(type) {
	case core.Input:
		v, ok := e.Value.([]byte)
		if !ok || e.Instance != b.own {
			return nil
		}
		alt := append(bytes.Clone(v), "-evil"...)
		b.values = map[cbc.Digest][]byte{cbc.DigestOf(b.own, v): v, cbc.DigestOf(b.own, alt): alt}
		b.shares, b.final = map[cbc.Digest][]tsig.Share{}, map[cbc.Digest]bool{}
		for d := range b.values {
			b.shares[d] = []tsig.Share{tsig.SignShare(run.Shares[b.id-1], cbc.SignedBytes(b.own, d))}
		}
		sends := [2][]byte{cbc.Encode(&wire.CBC{Kind: wire.CBC_SEND, Value: v}), cbc.Encode(&wire.CBC{Kind: wire.CBC_SEND, Value: alt})}
		for _, to := range b.x.Group.Members() {
			switch {
			case to == b.id:
			case slices.Contains(run.Byzantine, to):
				out.SendTo(to, b.own, sends[0])
				out.SendTo(to, b.own, sends[1])
			default:
				switch b.x.Rng.IntN(5) {
				case 0, 1:
					out.SendTo(to, b.own, sends[0])
				case 2, 3:
					out.SendTo(to, b.own, sends[1])
				default: // both, in random order
					k := b.x.Rng.IntN(2)
					out.SendTo(to, b.own, sends[k])
					out.SendTo(to, b.own, sends[1-k])
				}
			}
		}
		b.combine(out)
		return nil
	case core.Message:
		if e.Instance == b.own {
			b.collect(e, out)
			return nil
		}
		// Collude with a Byzantine sender: sign every payload it sends.
		if _, s, ok := e.Instance.Last(); ok && core.NodeID(s) == e.From && slices.Contains(run.Byzantine, e.From) {
			if m, err := cbc.Decode(e.Payload, wire.DefaultMaxPayload); err == nil && m.Kind == wire.CBC_SEND {
				d := cbc.DigestOf(e.Instance, m.Value)
				share := tsig.SignShare(run.Shares[b.id-1], cbc.SignedBytes(e.Instance, d))
				out.SendTo(e.From, e.Instance, cbc.Encode(&wire.CBC{Kind: wire.CBC_SHARE, Digest: d[:], Share: share.Marshal()}))
				return nil
			}
		}
	}
	var scratch core.Output
	_ = b.inner.Step(ev, &scratch)
	out.Sends = append(out.Sends, scratch.Sends...)
	out.Deliveries = append(out.Deliveries, scratch.Deliveries...)
	return nil
}

// collect gathers shares for either payload of its own instance.
func (b *doubleCertifier) collect(m core.Message, out *core.Output) {
	if b.values == nil {
		return
	}
	msg, err := cbc.Decode(m.Payload, wire.DefaultMaxPayload)
	if err != nil || msg.Kind != wire.CBC_SHARE {
		return
	}
	d := cbc.Digest(msg.Digest)
	if _, ok := b.values[d]; !ok || b.final[d] {
		return
	}
	s, err := tsig.UnmarshalShare(msg.Share)
	if err != nil || s.Index != uint32(m.From) || tsig.VerifyShare(b.st.run.Key, s, cbc.SignedBytes(b.own, d)) != nil {
		return
	}
	for _, have := range b.shares[d] {
		if have.Index == s.Index {
			return
		}
	}
	b.shares[d] = append(b.shares[d], s)
	b.combine(out)
}

func (b *doubleCertifier) combine(out *core.Output) {
	for d, v := range b.values {
		if b.final[d] || len(b.shares[d]) < b.st.run.Key.Threshold() {
			continue
		}
		sig, err := tsig.CombineVerified(b.st.run.Key, b.shares[d], cbc.SignedBytes(b.own, d))
		if err != nil {
			continue
		}
		b.final[d] = true
		out.Broadcast(b.own, cbc.Encode(&wire.CBC{Kind: wire.CBC_FINAL, Value: v, Signature: sig.Marshal()}))
	}
}

func checkCBC(c *sim.Cluster) []string {
	var v []string
	byInst := map[core.InstanceID]map[core.NodeID][]cbc.Certified{}
	for _, id := range c.Correct() {
		for _, d := range c.Deliveries(id) {
			if byInst[d.Instance] == nil {
				byInst[d.Instance] = map[core.NodeID][]cbc.Certified{}
			}
			x, ok := d.Value.(cbc.Certified)
			if !ok {
				v = append(v, fmt.Sprintf("integrity: replica %d delivered a %T", id, d.Value))
				continue
			}
			byInst[d.Instance][id] = append(byInst[d.Instance][id], x)
		}
	}
	var key *tsig.PublicKey
	if st, ok := c.Suite.State.(*cbcSuite); ok && st.run != nil {
		key = st.run.Key
	}
	for inst, byReplica := range byInst {
		_, s, _ := inst.Last()
		sender := core.NodeID(s)
		var first []byte
		var firstBy core.NodeID
		for _, id := range c.Correct() {
			vals, ok := byReplica[id]
			if !ok {
				continue
			}
			if len(vals) > 1 {
				v = append(v, fmt.Sprintf("integrity: replica %d delivered %s %d times", id, inst, len(vals)))
			}
			got := vals[0]
			if key != nil && cbc.VerifyCertificate(key, inst, got.Value, got.Signature) != nil {
				v = append(v, fmt.Sprintf("certificate: replica %d delivered %q for %s with an invalid certificate", id, got.Value, inst))
			}
			if firstBy == 0 {
				first, firstBy = got.Value, id
			} else if !bytes.Equal(got.Value, first) {
				v = append(v, fmt.Sprintf("agreement (consistency): %s delivered %q at %d but %q at %d", inst, first, firstBy, got.Value, id))
			}
			if c.IsCorrect(sender) {
				in := c.Inputs(sender)
				if len(in) == 0 || !bytes.Equal(in[0].Value.([]byte), got.Value) {
					v = append(v, fmt.Sprintf("integrity: %d delivered %q for %s, not the correct sender's input", id, got.Value, inst))
				}
			}
		}
	}
	return v
}

// cbcTerminated: validity only — every correct sender's broadcast is
// delivered by every correct replica. Consistent broadcast promises no
// totality for a Byzantine sender.
func cbcTerminated(c *sim.Cluster) bool {
	for _, s := range c.Correct() {
		if len(c.Inputs(s)) == 0 {
			continue
		}
		for _, id := range c.Correct() {
			if !slices.ContainsFunc(c.Deliveries(id), func(d sim.Delivered) bool { return d.Instance == cbcInstance(s) }) {
				return false
			}
		}
	}
	return true
}
