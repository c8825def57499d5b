package suites

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/maftia/maftia/broadcast/cbc"
	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/crypto/keys"
	"github.com/maftia/maftia/crypto/tsig"
	"github.com/maftia/maftia/sim"
	"github.com/maftia/maftia/wire"
)

func init() { register("cbc", CBC) }

// cbcInstance names the consistent broadcast whose sender is s.
func cbcInstance(s core.NodeID) core.InstanceID { return core.RootN("cbc", uint64(s)) }

// CBCRun is what one CBC run built, for benchmarks.
type CBCRun struct {
	Key       *tsig.PublicKey
	Shares    []*tsig.SecretShare
	Instances map[core.NodeID][]*cbc.CBC
	Hosts     map[core.NodeID]*prechecked
	Byzantine []core.NodeID
	certOK    map[string]bool
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

// threshold is the certificate threshold: the key set's quorum threshold
// (keys.Thresholds: n−f), or f for the deliberately broken variant.
func (st *cbcSuite) threshold(g core.Group) int {
	if st.o.Broken == "certify-with-f" {
		return max(g.F(), 1)
	}
	quorum, _, _, _ := keys.Thresholds(g.N(), g.F())
	return quorum
}

// setup is the trusted dealer of one run: the quorum key of a key set (as
// keys.Generate deals it: threshold n−f, DST keys.DSTQuorum) from a reader
// seeded by the run seed, so a seed replays exactly. Dealing is cached per
// (n, t, seed).
func (st *cbcSuite) setup(g core.Group, seed uint64) error {
	t := st.threshold(g)
	k := [3]uint64{uint64(g.N()), uint64(t), seed}
	if st.keys == nil || len(st.keys) > 64 {
		st.keys = map[[3]uint64]*CBCRun{}
	}
	dealt, ok := st.keys[k]
	if !ok {
		pub, shares, err := tsig.Deal(newSeededReader("cbc", seed), g.N(), t, []byte(keys.DSTQuorum))
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
	h := host(id, mux, st.o.InlineChecks)
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
			startBroadcasts(c, o, cbcInstance)
		},
		Describe: func(_ core.InstanceID, p []byte) string { return cbc.Describe(p) },
		Mutate:   st.mutate,
		AltInput: twinInput,
		Attacks:  []sim.Behaviour{DoubleCertify{st: st}},
		Check:    st.check,
		Terminated: func(c *sim.Cluster) bool {
			// Validity only: consistent broadcast promises no totality.
			return broadcastTerminated(c, cbcInstance, false)
		},
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
		} else if j := junkPoint(binary.BigEndian.Uint32(m.Share)); j != nil {
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

// check is consistency (agreement on the payload), integrity, and that
// every delivered certificate verifies. Certificates are unique (BLS), so
// each distinct one is verified once per run.
func (st *cbcSuite) check(c *sim.Cluster) []string {
	var v []string
	run := st.run
	if run.certOK == nil {
		run.certOK = map[string]bool{}
	}
	outcome := func(x any) string {
		switch y := x.(type) {
		case cbc.Certified:
			return bytesOutcome(y.Value)
		}
		return bytesOutcome(x)
	}
	for _, id := range c.Correct() {
		for _, d := range c.Deliveries(id) {
			x, ok := d.Value.(cbc.Certified)
			if !ok {
				continue // reported by checkBroadcast as an unexpected outcome
			}
			k := fmt.Sprintf("%s|%x|%x", d.Instance, x.Value, x.Signature)
			valid, seen := run.certOK[k]
			if !seen {
				valid = cbc.VerifyCertificate(run.Key, d.Instance, x.Value, x.Signature) == nil
				run.certOK[k] = valid
			}
			if !valid {
				v = append(v, fmt.Sprintf("certificate: replica %d delivered %q for %s with an invalid certificate", id, x.Value, d.Instance))
			}
		}
	}
	return append(v, checkBroadcast(c, "agreement (consistency)", outcome)...)
}
