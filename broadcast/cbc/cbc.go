package cbc

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/crypto/tsig"
	"github.com/maftia/maftia/wire"
)

// Params configures one consistent-broadcast instance.
type Params struct {
	Group      core.Group
	Self       core.NodeID
	Sender     core.NodeID
	MaxPayload int // largest payload accepted, in bytes

	// Key is the public part of the group's certificate key set
	// (keys.Cluster.Quorum); its threshold is the number of signature
	// shares a certificate needs. maftia deals it with threshold n−f
	// (keys.Thresholds, core.Group.Quorum); Check accepts
	// any threshold in [⌈(n+f+1)/2⌉, n−f]: at least ⌈(n+f+1)/2⌉ so that two
	// certificates share a correct signer (consistency), at most n−f so the
	// correct replicas alone can certify (validity).
	Key *tsig.PublicKey
	// Share is this replica's secret share (index Self) of that key
	// (keys.Private.Quorum).
	Share *tsig.SecretShare

	// UnsafeAnyThreshold skips the lower bound on Key's threshold. It
	// exists only so the simulator can show that a CBC certifying with too
	// few shares is caught (suites.Options{Broken: "certify-with-f"});
	// never set it elsewhere.
	UnsafeAnyThreshold bool
}

// DefaultParams returns parameters with a 1 MiB payload bound.
func DefaultParams(g core.Group, self, sender core.NodeID, key *tsig.PublicKey, share *tsig.SecretShare) Params {
	return Params{Group: g, Self: self, Sender: sender, MaxPayload: 1 << 20, Key: key, Share: share}
}

// ErrThreshold is wrapped by Check when the key's threshold cannot give
// consistency (too low) or validity (too high).
var ErrThreshold = errors.New("cbc: certificate threshold out of range")

// Check validates the parameters: n ≥ 3f+1, members in range, a key set of
// n shares whose threshold lies in [⌈(n+f+1)/2⌉, n−f], and this replica's
// share.
func (p Params) Check() error {
	g := p.Group
	if g.N() < 3*g.F()+1 {
		return fmt.Errorf("cbc: %w: need n ≥ 3f+1, have %s", core.ErrResilience, g)
	}
	if !g.Contains(p.Self) || !g.Contains(p.Sender) {
		return fmt.Errorf("cbc: self %d or sender %d not in %s", p.Self, p.Sender, g)
	}
	if p.MaxPayload <= 0 || p.MaxPayload > wire.DefaultMaxPayload {
		return fmt.Errorf("cbc: MaxPayload %d not in [1, %d]", p.MaxPayload, wire.DefaultMaxPayload)
	}
	if p.Key == nil || p.Key.N() != g.N() {
		return fmt.Errorf("cbc: key set missing or not for %s", g)
	}
	if t := p.Key.Threshold(); t > g.Quorum() || (t < g.ByzQuorum() && !p.UnsafeAnyThreshold) {
		return fmt.Errorf("%w: threshold %d not in [%d, %d] for %s", ErrThreshold, t, g.ByzQuorum(), g.Quorum(), g)
	}
	if p.Share == nil || p.Share.Index() != uint32(p.Self) {
		return fmt.Errorf("cbc: secret share missing or not replica %d's", p.Self)
	}
	return nil
}

// Digest is the instance-bound hash of a payload.
type Digest [sha256.Size]byte

const domain = "maftia/cbc/v1"

func writeLP(h interface{ Write([]byte) (int, error) }, b []byte) {
	var l [8]byte
	binary.BigEndian.PutUint64(l[:], uint64(len(b)))
	h.Write(l[:])
	h.Write(b)
}

// DigestOf returns SHA-256(domain ‖ "value" ‖ len ‖ instance ‖ len ‖ value).
func DigestOf(inst core.InstanceID, value []byte) Digest {
	h := sha256.New()
	writeLP(h, []byte(domain+"/value"))
	writeLP(h, []byte(inst))
	writeLP(h, value)
	var d Digest
	h.Sum(d[:0])
	return d
}

// SignedBytes is what a signature share and a certificate sign: the
// length-prefixed domain, instance and digest, so a share or certificate
// for one instance is never valid for another (ATTACKS.md row 11).
func SignedBytes(inst core.InstanceID, d Digest) []byte {
	b := make([]byte, 0, 3*8+len(domain)+6+len(inst)+len(d))
	for _, part := range [][]byte{[]byte(domain + "/final"), []byte(inst), d[:]} {
		b = binary.BigEndian.AppendUint64(b, uint64(len(part)))
		b = append(b, part...)
	}
	return b
}

// VerifyCertificate checks that sig is a valid certificate for value in
// instance inst under the key set pub: the transferable proof, usable by
// anyone holding the public key (e.g. MVBA's external validity), that a
// threshold of replicas — at least ⌈(n+f+1)/2⌉, hence at least one correct
// — accepted value as the sender's only payload for inst.
func VerifyCertificate(pub *tsig.PublicKey, inst core.InstanceID, value, sig []byte) error {
	s, err := tsig.UnmarshalSignature(sig)
	if err != nil {
		return fmt.Errorf("cbc: certificate: %w", err)
	}
	if err := tsig.Verify(pub, s, SignedBytes(inst, DigestOf(inst, value))); err != nil {
		return fmt.Errorf("cbc: certificate: %w", err)
	}
	return nil
}

// Certified is what a replica delivers: the payload and its certificate
// (a threshold signature checkable with VerifyCertificate).
type Certified struct {
	Value     []byte
	Signature []byte
}

func (c Certified) String() string {
	v := string(c.Value)
	if len(v) > 24 {
		v = fmt.Sprintf("%s…(%dB)", v[:16], len(c.Value))
	}
	return fmt.Sprintf("%q σ=%x", v, c.Signature[:min(4, len(c.Signature))])
}

// Ops counts the cryptographic work one instance did, for benchmarks.
type Ops struct {
	SignShares  int // signature shares produced (one hash-to-curve + one exponentiation)
	ShareChecks int // shares verified one by one (one pairing check each)
	Combines    int // Lagrange interpolations
	SigChecks   int // combined signatures verified (one pairing check each)
	BadShares   int // invalid shares named by the fallback
	BadFinals   int // FINALs whose certificate failed
}

// CBC is one consistent-broadcast instance at one replica.
type CBC struct {
	inst core.InstanceID
	p    Params
	ops  Ops

	// Every replica.
	sendSeen  bool
	sendValue []byte
	signed    bool   // a share was signed (persisted)
	signedFor Digest // ... for this digest
	delivered bool
	badFinal  []bool // replicas whose FINAL failed: their further FINALs are ignored

	// The sender.
	value     []byte
	digest    Digest
	haveValue bool
	finalSent bool
	shares    []*tsig.Share // index NodeID−1; nil: none yet
	verified  []bool
	bad       []bool // replicas that sent an invalid share
}

// New creates an instance. The sender starts it with core.Input{Value: []byte}.
func New(inst core.InstanceID, p Params) (*CBC, error) {
	if err := p.Check(); err != nil {
		return nil, err
	}
	n := p.Group.N()
	c := &CBC{inst: inst, p: p, badFinal: make([]bool, n)}
	if p.Self == p.Sender {
		c.shares, c.verified, c.bad = make([]*tsig.Share, n), make([]bool, n), make([]bool, n)
	}
	return c, nil
}

// recordSigned is the persisted fact "I signed a share for digest d in this
// instance": a replica never signs two digests for one instance, across
// restarts (ATTACKS.md rows 1 and 5; "persisted last-signed state never goes
// backwards").
const recordSigned = "signed"

// Recover recreates an instance from the records it persisted.
func Recover(inst core.InstanceID, p Params, records []core.Record) (*CBC, error) {
	c, err := New(inst, p)
	if err != nil {
		return nil, err
	}
	for _, rec := range records {
		if rec.Instance != inst || rec.Key != recordSigned || len(rec.Value) != len(Digest{}) {
			return nil, fmt.Errorf("cbc: bad persisted record %q for %s", rec.Key, inst)
		}
		c.signed = true
		copy(c.signedFor[:], rec.Value)
	}
	return c, nil
}

// Finished reports delivery; the host may then drop the instance.
func (c *CBC) Finished() bool { return c.delivered }

// Ops returns the cryptographic work done so far.
func (c *CBC) Ops() Ops { return c.ops }

// Encode marshals a CBC message.
func Encode(m *wire.CBC) []byte {
	return wire.Marshal(m)
}

// Decode parses and validates a CBC message from the network: SEND carries
// a value only; SHARE a 32-byte digest and a tsig.ShareSize-byte share;
// FINAL a value and a tsig.SignatureSize-byte signature. Values are at most
// maxPayload bytes. Points are decoded (and subgroup-checked) later.
func Decode(b []byte, maxPayload int) (*wire.CBC, error) {
	var m wire.CBC
	if err := proto.Unmarshal(b, &m); err != nil {
		// protobuf-go randomises its error texts between builds; evidence
		// and traces must be reproducible, so report only the fact.
		return nil, fmt.Errorf("%w: cbc: %d bytes are not a protobuf message", wire.ErrMalformed, len(b))
	}
	if len(m.Value) > maxPayload {
		return nil, fmt.Errorf("%w: cbc: value of %d bytes > %d", wire.ErrMalformed, len(m.Value), maxPayload)
	}
	ok := false
	switch m.Kind {
	case wire.CBC_SEND:
		ok = len(m.Digest) == 0 && len(m.Share) == 0 && len(m.Signature) == 0
	case wire.CBC_SHARE:
		ok = len(m.Value) == 0 && len(m.Digest) == sha256.Size && len(m.Share) == tsig.ShareSize && len(m.Signature) == 0
	case wire.CBC_FINAL:
		ok = len(m.Digest) == 0 && len(m.Share) == 0 && len(m.Signature) == tsig.SignatureSize
	default:
		return nil, fmt.Errorf("%w: cbc: unknown kind %d", wire.ErrMalformed, m.Kind)
	}
	if !ok {
		return nil, fmt.Errorf("%w: cbc: %s with wrong fields", wire.ErrMalformed, m.Kind)
	}
	return &m, nil
}

// checked is a decoded message whose share or certificate is verified.
type checked struct {
	m     *wire.CBC
	share tsig.Share
	sig   tsig.Signature
}

func evidence(from core.NodeID, kind core.EvidenceKind, inst core.InstanceID, format string, args ...any) error {
	return fmt.Errorf("cbc: %w", &core.Evidence{Accused: from, Kind: kind, Instance: inst, Detail: fmt.Sprintf(format, args...)})
}

// Precheck decodes a message and verifies its share (against the digest
// the SHARE names) or its certificate, off the stepping goroutine. It is
// pure: it reads only the immutable parameters and key. A failure is
// returned as an error wrapping *core.Evidence.
func (c *CBC) Precheck(m core.Message) (any, error) {
	msg, err := Decode(m.Payload, c.p.MaxPayload)
	if err != nil {
		return nil, evidence(m.From, core.Malformed, c.inst, "%v", err)
	}
	out := &checked{m: msg}
	switch msg.Kind {
	case wire.CBC_SHARE:
		s, err := tsig.UnmarshalShare(msg.Share)
		if err != nil {
			return nil, evidence(m.From, core.Malformed, c.inst, "%v", err)
		}
		if s.Index != uint32(m.From) {
			return nil, evidence(m.From, core.InvalidProof, c.inst, "share index %d from replica %d", s.Index, m.From)
		}
		if err := tsig.VerifyShare(c.p.Key, s, SignedBytes(c.inst, Digest(msg.Digest))); err != nil {
			return nil, evidence(m.From, core.InvalidProof, c.inst, "%v", err)
		}
		out.share = s
	case wire.CBC_FINAL:
		s, err := tsig.UnmarshalSignature(msg.Signature)
		if err != nil {
			return nil, evidence(m.From, core.Malformed, c.inst, "%v", err)
		}
		if err := tsig.Verify(c.p.Key, s, SignedBytes(c.inst, DigestOf(c.inst, msg.Value))); err != nil {
			return nil, evidence(m.From, core.InvalidProof, c.inst, "FINAL certificate: %v", err)
		}
		out.sig = s
	}
	return out, nil
}

// Step applies one event.
func (c *CBC) Step(ev core.Event, out *core.Output) error {
	switch e := ev.(type) {
	case core.Input:
		return c.broadcast(e, out)
	case core.Message:
		c.receive(e, out)
		return nil
	default:
		return fmt.Errorf("cbc: unexpected event %s", ev)
	}
}

// ErrNotSender is wrapped by Step errors for an input at a replica that is
// not the instance's sender, or a second input.
var ErrNotSender = errors.New("cbc: input at a replica that is not the sender")

// upon c-broadcast(m) at the sender: send SEND(m) to all.
func (c *CBC) broadcast(in core.Input, out *core.Output) error {
	v, ok := in.Value.([]byte)
	if !ok {
		return fmt.Errorf("cbc: input value is %T, want []byte", in.Value)
	}
	if c.p.Self != c.p.Sender || c.haveValue {
		return fmt.Errorf("%w: replica %d, sender %d of %s", ErrNotSender, c.p.Self, c.p.Sender, c.inst)
	}
	if len(v) > c.p.MaxPayload {
		return fmt.Errorf("cbc: payload %d bytes > MaxPayload %d", len(v), c.p.MaxPayload)
	}
	c.value, c.digest, c.haveValue = v, DigestOf(c.inst, v), true
	out.Broadcast(c.inst, Encode(&wire.CBC{Kind: wire.CBC_SEND, Value: v}))
	return nil
}

func (c *CBC) receive(m core.Message, out *core.Output) {
	if c.delivered || !c.p.Group.Contains(m.From) {
		return
	}
	ch, ok := m.Checked.(*checked)
	if !ok {
		msg, err := Decode(m.Payload, c.p.MaxPayload)
		if err != nil {
			out.Accuse(m.From, core.Malformed, c.inst, "%v", err)
			return
		}
		ch = &checked{m: msg}
	}
	switch ch.m.Kind {
	case wire.CBC_SEND:
		c.onSend(m.From, ch.m.Value, out)
	case wire.CBC_SHARE:
		c.onShare(m.From, ch, m.Checked != nil, out)
	case wire.CBC_FINAL:
		c.onFinal(m.From, ch, m.Checked != nil, out)
	}
}

// upon SEND(m) from the sender, the first time, if no share was ever signed
// for another digest in this instance: σ_i ← SignShare(sk_i, (inst, H(m)));
// persist "signed H(m)"; send SHARE(H(m), σ_i) to the sender.
func (c *CBC) onSend(from core.NodeID, v []byte, out *core.Output) {
	if from != c.p.Sender {
		out.Accuse(from, core.Unexpected, c.inst, "SEND from a replica that is not the sender %d", c.p.Sender)
		return
	}
	d := DigestOf(c.inst, v)
	if c.sendSeen {
		if DigestOf(c.inst, c.sendValue) != d {
			out.Accuse(from, core.Equivocation, c.inst, "second SEND with another payload")
		}
		return
	}
	c.sendSeen, c.sendValue = true, v
	if c.signed && c.signedFor != d {
		return // signed another digest before a restart: never sign two
	}
	if !c.signed {
		c.signed, c.signedFor = true, d
		out.PersistRecord(c.inst, recordSigned, d[:])
	}
	// BLS shares are deterministic: re-signing after a restart yields the
	// same share, so this is never a second, different share.
	share := tsig.SignShare(c.p.Share, SignedBytes(c.inst, d))
	c.ops.SignShares++
	out.SendTo(c.p.Sender, c.inst, Encode(&wire.CBC{Kind: wire.CBC_SHARE, Digest: d[:], Share: share.Marshal()}))
}

// upon SHARE(H(m), σ_j) from replica j at the sender: keep σ_j (one per
// replica); upon threshold shares: σ ← Combine (optimistically: interpolate,
// verify once; on failure verify each share, report the invalid ones as
// evidence and wait for more); send FINAL(m, σ) to all.
func (c *CBC) onShare(from core.NodeID, ch *checked, verified bool, out *core.Output) {
	if c.p.Self != c.p.Sender {
		out.Accuse(from, core.Unexpected, c.inst, "SHARE sent to replica %d, not the sender %d", c.p.Self, c.p.Sender)
		return
	}
	i := from - 1
	if !c.haveValue || c.finalSent || c.bad[i] || c.shares[i] != nil {
		return
	}
	if Digest(ch.m.Digest) != c.digest {
		out.Accuse(from, core.Unexpected, c.inst, "SHARE for a digest the sender never sent")
		return
	}
	s := ch.share
	if !verified {
		var err error
		if s, err = tsig.UnmarshalShare(ch.m.Share); err != nil {
			out.Accuse(from, core.Malformed, c.inst, "%v", err)
			c.bad[i] = true
			return
		}
		if s.Index != uint32(from) {
			out.Accuse(from, core.InvalidProof, c.inst, "share index %d from replica %d", s.Index, from)
			c.bad[i] = true
			return
		}
	}
	c.shares[i], c.verified[i] = &s, verified
	c.tryCombine(out)
}

func (c *CBC) tryCombine(out *core.Output) {
	t := c.p.Key.Threshold()
	var set []tsig.Share
	allVerified := true
	for i, s := range c.shares {
		if s != nil {
			set = append(set, *s)
			allVerified = allVerified && c.verified[i]
		}
	}
	if len(set) < t {
		return
	}
	msg := SignedBytes(c.inst, c.digest)
	var sig tsig.Signature
	var err error
	c.ops.Combines++
	if allVerified {
		sig, err = tsig.CombineVerified(c.p.Key, set, msg)
	} else {
		var bad []uint32
		sig, bad, err = tsig.Combine(c.p.Key, set, msg)
		c.ops.SigChecks++
		if len(bad) > 0 {
			c.ops.ShareChecks += len(set)
		}
		if err != nil && !errors.Is(err, tsig.ErrTooFewShares) {
			// A structural defect (share under another key or for another
			// message): find the culprits one by one.
			bad = bad[:0]
			for _, s := range set {
				c.ops.ShareChecks++
				if tsig.VerifyShare(c.p.Key, s, msg) != nil {
					bad = append(bad, s.Index)
				}
			}
			err = tsig.ErrTooFewShares // retried below with the culprits removed
		}
		for _, b := range bad {
			out.Accuse(core.NodeID(b), core.InvalidProof, c.inst, "invalid signature share")
			c.ops.BadShares++
			c.bad[b-1], c.shares[b-1] = true, nil
		}
		if err != nil {
			if len(bad) > 0 {
				c.tryCombine(out) // enough valid shares may remain
			}
			return
		}
	}
	if err != nil {
		return // cannot happen with verified shares of distinct indices
	}
	c.finalSent = true
	c.shares, c.verified = nil, nil
	out.Broadcast(c.inst, Encode(&wire.CBC{Kind: wire.CBC_FINAL, Value: c.value, Signature: sig.Marshal()}))
}

// upon FINAL(m, σ) with σ a valid certificate for (inst, H(m)), the first
// time: deliver m (with σ).
func (c *CBC) onFinal(from core.NodeID, ch *checked, verified bool, out *core.Output) {
	if c.badFinal[from-1] {
		return
	}
	if !verified {
		sig, err := tsig.UnmarshalSignature(ch.m.Signature)
		if err != nil {
			out.Accuse(from, core.Malformed, c.inst, "%v", err)
			c.badFinal[from-1] = true
			return
		}
		c.ops.SigChecks++
		if err := tsig.Verify(c.p.Key, sig, SignedBytes(c.inst, DigestOf(c.inst, ch.m.Value))); err != nil {
			out.Accuse(from, core.InvalidProof, c.inst, "FINAL certificate: %v", err)
			c.ops.BadFinals++
			c.badFinal[from-1] = true
			return
		}
	}
	c.delivered = true
	out.Deliver(c.inst, Certified{Value: ch.m.Value, Signature: ch.m.Signature})
	c.sendValue, c.shares, c.verified, c.value = nil, nil, nil, nil
}

// Describe renders a payload for simulator traces.
func Describe(payload []byte) string {
	m, err := Decode(payload, wire.DefaultMaxPayload)
	if err != nil {
		return fmt.Sprintf("garbage(%dB)", len(payload))
	}
	switch m.Kind {
	case wire.CBC_SHARE:
		return fmt.Sprintf("SHARE h=%x i=%d", m.Digest[:4], binary.BigEndian.Uint32(m.Share))
	case wire.CBC_FINAL:
		return fmt.Sprintf("FINAL v=%q σ=%x", abbreviate(m.Value), m.Signature[:4])
	default:
		return fmt.Sprintf("SEND v=%q", abbreviate(m.Value))
	}
}

func abbreviate(v []byte) string {
	if len(v) > 16 {
		return fmt.Sprintf("%s…(%dB)", v[:12], len(v))
	}
	return string(v)
}
