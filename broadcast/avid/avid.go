package avid

import (
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/klauspost/reedsolomon"
	"google.golang.org/protobuf/proto"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/wire"
)

// Params configures one broadcast instance. Group and MaxPayload are
// protocol constants: every replica must use the same values, since the
// fragment bound and the ⊥ verdict depend on them.
type Params struct {
	Group      core.Group
	Self       core.NodeID
	Sender     core.NodeID
	MaxPayload int // largest payload accepted, in bytes; bounds fragment sizes
}

// DefaultParams returns parameters with a 1 MiB payload bound.
func DefaultParams(g core.Group, self, sender core.NodeID) Params {
	return Params{Group: g, Self: self, Sender: sender, MaxPayload: 1 << 20}
}

// Check validates the parameters, refusing groups below n ≥ 3f+1.
func (p Params) Check() error {
	if p.Group.N() < 3*p.Group.F()+1 {
		return fmt.Errorf("avid: %w: need n ≥ 3f+1, have %s", core.ErrResilience, p.Group)
	}
	if !p.Group.Contains(p.Self) || !p.Group.Contains(p.Sender) {
		return fmt.Errorf("avid: self %d or sender %d not in %s", p.Self, p.Sender, p.Group)
	}
	if p.MaxPayload <= 0 || p.MaxPayload > wire.DefaultMaxPayload {
		return fmt.Errorf("avid: MaxPayload %d not in [1, %d]", p.MaxPayload, wire.DefaultMaxPayload)
	}
	return nil
}

// MaxFragment is the largest fragment a replica accepts: the fragment size
// of a payload of MaxPayload bytes.
func (p Params) MaxFragment() int { return ShardSize(p.Group.N(), p.Group.F(), p.MaxPayload) }

// Invalid is delivered instead of a payload when the sender's fragments
// are not a consistent encoding of any payload within the bound (the
// "invalid broadcast" outcome ⊥). Every correct replica that delivers for
// an instance delivers the same Invalid, or the same payload.
type Invalid struct{ Root Digest }

func (v Invalid) String() string { return fmt.Sprintf("⊥(root=%x)", v.Root[:4]) }

// Ops counts the work one instance did, for benchmarks.
type Ops struct {
	ProofChecks int // Merkle proofs verified
	Encodes     int // Reed–Solomon encodings (the sender's and the re-encoding check)
	Decodes     int // Reed–Solomon decodings
}

// AVID is one erasure-coded reliable-broadcast instance at one replica.
type AVID struct {
	inst core.InstanceID
	p    Params
	code reedsolomon.Encoder
	ops  Ops

	sendSeen, sentEcho, sentReady, delivered bool
	sendRoot, readyRoot                      Digest

	// Per replica (index NodeID−1): its first ECHO (root and fragment; a
	// replica whose ECHO failed its proof is ignored from then on) and its
	// first READY.
	echoSeen, readySeen []bool
	echoOf, readyOf     []Digest
	frags               [][]byte
	echoes, readies     map[Digest]int
}

// New creates an instance. The sender starts it with core.Input{Value: []byte}.
func New(inst core.InstanceID, p Params) (*AVID, error) {
	if err := p.Check(); err != nil {
		return nil, err
	}
	code, err := newCode(p.Group.N(), p.Group.F())
	if err != nil {
		return nil, fmt.Errorf("avid: erasure code for %s: %w", p.Group, err)
	}
	n := p.Group.N()
	return &AVID{
		inst: inst, p: p, code: code,
		echoSeen: make([]bool, n), readySeen: make([]bool, n),
		echoOf: make([]Digest, n), readyOf: make([]Digest, n),
		frags:  make([][]byte, n),
		echoes: make(map[Digest]int), readies: make(map[Digest]int),
	}, nil
}

// Persisted record keys: a replica never echoes two roots nor readies two
// roots, across restarts (ATTACKS.md rows 1 and 5: amnesia is equivocation).
const (
	recordEcho  = "echo"
	recordReady = "ready"
)

// Recover recreates an instance from the records it persisted.
func Recover(inst core.InstanceID, p Params, records []core.Record) (*AVID, error) {
	a, err := New(inst, p)
	if err != nil {
		return nil, err
	}
	for _, rec := range records {
		if rec.Instance != inst || len(rec.Value) != len(Digest{}) {
			return nil, fmt.Errorf("avid: bad persisted record %q for %s", rec.Key, inst)
		}
		switch rec.Key {
		case recordEcho:
			a.sentEcho = true
		case recordReady:
			a.sentReady = true
			copy(a.readyRoot[:], rec.Value)
		default:
			return nil, fmt.Errorf("avid: unknown persisted record %q", rec.Key)
		}
	}
	return a, nil
}

// Finished reports delivery; the host may then drop the instance.
func (a *AVID) Finished() bool { return a.delivered }

// Ops returns the work done so far.
func (a *AVID) Ops() Ops { return a.ops }

// Encode marshals an AVID message.
func Encode(m *wire.AVID) []byte {
	return wire.Marshal(m)
}

// Decode parses and validates an AVID message from the network for a
// group g: roots are 32 bytes, fragments non-empty and at most the
// fragment size of a maxPayload-byte payload, proofs exactly Depth(n)
// hashes.
func Decode(b []byte, g core.Group, maxPayload int) (*wire.AVID, error) {
	var m wire.AVID
	if err := proto.Unmarshal(b, &m); err != nil {
		// protobuf-go randomises its error texts between builds; evidence
		// and traces must be reproducible, so report only the fact.
		return nil, fmt.Errorf("%w: avid: %d bytes are not a protobuf message", wire.ErrMalformed, len(b))
	}
	if len(m.Root) != sha256.Size {
		return nil, fmt.Errorf("%w: avid: root of %d bytes", wire.ErrMalformed, len(m.Root))
	}
	switch m.Kind {
	case wire.AVID_SEND, wire.AVID_ECHO:
		if maxFrag := ShardSize(g.N(), g.F(), maxPayload); len(m.Fragment) == 0 || len(m.Fragment) > maxFrag {
			return nil, fmt.Errorf("%w: avid: fragment of %d bytes not in [1, %d]", wire.ErrMalformed, len(m.Fragment), maxFrag)
		}
		if want := Depth(g.N()) * sha256.Size; len(m.Proof) != want {
			return nil, fmt.Errorf("%w: avid: proof of %d bytes, want %d", wire.ErrMalformed, len(m.Proof), want)
		}
	case wire.AVID_READY:
		if len(m.Fragment) != 0 || len(m.Proof) != 0 {
			return nil, fmt.Errorf("%w: avid: READY carries a fragment or proof", wire.ErrMalformed)
		}
	default:
		return nil, fmt.Errorf("%w: avid: unknown kind %d", wire.ErrMalformed, m.Kind)
	}
	return &m, nil
}

// checked is the result of Precheck: a decoded message whose Merkle proof
// (for SEND and ECHO) has been verified for the index it must carry.
type checked struct {
	m       *wire.AVID
	proofOK bool
}

// Precheck decodes a message and verifies its Merkle proof off the
// stepping goroutine. It is pure: it reads only the immutable parameters.
func (a *AVID) Precheck(m core.Message) (any, error) {
	msg, err := Decode(m.Payload, a.p.Group, a.p.MaxPayload)
	if err != nil {
		return nil, fmt.Errorf("%w", &core.Evidence{Accused: m.From, Kind: core.Malformed, Instance: a.inst, Detail: err.Error()})
	}
	c := &checked{m: msg}
	if idx, ok := a.fragmentIndex(msg.Kind, m.From); ok {
		c.proofOK = VerifyProof(a.inst, a.p.Group.N(), idx, msg.Fragment, msg.Proof, Digest(msg.Root)) == nil
	}
	return c, nil
}

// fragmentIndex is the index of the fragment a SEND or ECHO must carry:
// the recipient's own for SEND, the echoing replica's for ECHO.
func (a *AVID) fragmentIndex(k wire.AVID_Kind, from core.NodeID) (int, bool) {
	switch k {
	case wire.AVID_SEND:
		return int(a.p.Self) - 1, true
	case wire.AVID_ECHO:
		return int(from) - 1, true
	}
	return 0, false
}

// Step applies one event.
func (a *AVID) Step(ev core.Event, out *core.Output) error {
	switch e := ev.(type) {
	case core.Input:
		return a.broadcast(e, out)
	case core.Message:
		a.receive(e, out)
		return nil
	default:
		return fmt.Errorf("avid: unexpected event %s", ev)
	}
}

// upon avid-broadcast(m) at the sender: encode m into n fragments F_1..F_n
// with any f+1 recovering m; compute the Merkle root h over them; send
// SEND(h, F_i, proof_i) to each replica i.
func (a *AVID) broadcast(in core.Input, out *core.Output) error {
	v, ok := in.Value.([]byte)
	if !ok {
		return fmt.Errorf("avid: input value is %T, want []byte", in.Value)
	}
	if a.p.Self != a.p.Sender {
		return fmt.Errorf("%w: replica %d, sender %d of %s", ErrNotSender, a.p.Self, a.p.Sender, a.inst)
	}
	if len(v) > a.p.MaxPayload {
		return fmt.Errorf("avid: payload %d bytes > MaxPayload %d", len(v), a.p.MaxPayload)
	}
	frags, err := encodeWith(a.code, a.p.Group.N(), a.p.Group.F(), v)
	if err != nil {
		return err
	}
	a.ops.Encodes++
	root, proofs := Commit(a.inst, frags)
	for i, to := range a.p.Group.Members() {
		out.SendTo(to, a.inst, Encode(&wire.AVID{Kind: wire.AVID_SEND, Root: root[:], Fragment: frags[i], Proof: proofs[i]}))
	}
	return nil
}

func (a *AVID) receive(m core.Message, out *core.Output) {
	if a.delivered || !a.p.Group.Contains(m.From) {
		return
	}
	c, ok := m.Checked.(*checked)
	if !ok {
		msg, err := Decode(m.Payload, a.p.Group, a.p.MaxPayload)
		if err != nil {
			out.Accuse(m.From, core.Malformed, a.inst, "%v", err)
			return
		}
		c = &checked{m: msg}
		if idx, ok := a.fragmentIndex(msg.Kind, m.From); ok && a.wantsProof(msg.Kind, m.From) {
			a.ops.ProofChecks++
			c.proofOK = VerifyProof(a.inst, a.p.Group.N(), idx, msg.Fragment, msg.Proof, Digest(msg.Root)) == nil
		}
	}
	root := Digest(c.m.Root)
	switch c.m.Kind {
	case wire.AVID_SEND:
		a.onSend(m.From, root, c, out)
	case wire.AVID_ECHO:
		a.onEcho(m.From, root, c, out)
	case wire.AVID_READY:
		a.onReady(m.From, root, out)
	}
}

// wantsProof reports whether an inline proof check can change anything:
// only the first SEND from the sender and the first ECHO of each replica
// are ever used, so later ones are not hashed (CPU bounded per replica).
func (a *AVID) wantsProof(k wire.AVID_Kind, from core.NodeID) bool {
	switch k {
	case wire.AVID_SEND:
		return from == a.p.Sender && !a.sendSeen
	case wire.AVID_ECHO:
		return !a.echoSeen[from-1]
	}
	return false
}

// upon SEND(h, F_i, proof_i) from the sender, the first time, with a valid
// proof that F_i is leaf i of h: send ECHO(h, F_i, proof_i) to all.
func (a *AVID) onSend(from core.NodeID, root Digest, c *checked, out *core.Output) {
	if from != a.p.Sender {
		out.Accuse(from, core.Unexpected, a.inst, "SEND from a replica that is not the sender %d", a.p.Sender)
		return
	}
	if a.sendSeen {
		if root != a.sendRoot {
			out.Accuse(from, core.Equivocation, a.inst, "second SEND with another root")
		}
		return
	}
	a.sendSeen, a.sendRoot = true, root
	if !c.proofOK {
		out.Accuse(from, core.InvalidProof, a.inst, "SEND fragment %d fails its Merkle proof", a.p.Self)
		return
	}
	if a.sentEcho {
		return // echoed before a restart; never echo twice
	}
	a.sentEcho = true
	out.PersistRecord(a.inst, recordEcho, root[:])
	out.Broadcast(a.inst, Encode(&wire.AVID{Kind: wire.AVID_ECHO, Root: root[:], Fragment: c.m.Fragment, Proof: c.m.Proof}))
}

// upon ECHO(h, F_j, proof_j) from replica j with a valid proof that F_j is
// leaf j of h: store F_j; upon n−f such ECHOs for h and no READY sent:
// send READY(h) to all.
func (a *AVID) onEcho(from core.NodeID, root Digest, c *checked, out *core.Output) {
	i := from - 1
	if a.echoSeen[i] {
		if a.echoOf[i] != root && a.frags[i] != nil {
			out.Accuse(from, core.Equivocation, a.inst, "two ECHOs with different roots")
		}
		return
	}
	a.echoSeen[i] = true
	if !c.proofOK {
		out.Accuse(from, core.InvalidProof, a.inst, "ECHO fragment %d fails its Merkle proof", from)
		return
	}
	a.echoOf[i], a.frags[i] = root, c.m.Fragment
	a.echoes[root]++
	if a.echoes[root] >= a.p.Group.Quorum() {
		a.sendReady(root, out)
	}
	a.tryDeliver(out)
}

// upon READY(h) from f+1 replicas and no READY sent: send READY(h)
// (amplification).
func (a *AVID) onReady(from core.NodeID, root Digest, out *core.Output) {
	i := from - 1
	if a.readySeen[i] {
		if a.readyOf[i] != root {
			out.Accuse(from, core.Equivocation, a.inst, "two READYs with different roots")
		}
		return
	}
	a.readySeen[i], a.readyOf[i] = true, root
	a.readies[root]++
	if a.readies[root] >= a.p.Group.OneCorrect() {
		a.sendReady(root, out)
	}
	a.tryDeliver(out)
}

func (a *AVID) sendReady(root Digest, out *core.Output) {
	if a.sentReady {
		return
	}
	a.sentReady, a.readyRoot = true, root
	out.PersistRecord(a.inst, recordReady, root[:])
	out.Broadcast(a.inst, Encode(&wire.AVID{Kind: wire.AVID_READY, Root: root[:]}))
}

// upon READY(h) from 2f+1 replicas and f+1 stored fragments of h: decode m
// from the fragments; re-encode m and recompute the root h'; if h' = h
// deliver m, else deliver ⊥.
//
// Why every correct replica decides alike: if h' = h for the fragments one
// replica used, the n fragments committed by h are exactly the canonical
// encoding of m (SHA-256 collision resistance), so any f+1 of them decode
// to m at every replica. If the committed fragments are not a canonical
// encoding, no subset can re-encode to h, and every replica delivers ⊥.
// Nothing here asserts or panics on a Byzantine sender's choice.
func (a *AVID) tryDeliver(out *core.Output) {
	if !a.sentReady || a.readies[a.readyRoot] < 2*a.p.Group.F()+1 || a.echoes[a.readyRoot] < a.p.Group.OneCorrect() {
		return
	}
	frags := make([][]byte, len(a.frags))
	for i, fr := range a.frags {
		if fr != nil && a.echoOf[i] == a.readyRoot {
			frags[i] = fr
		}
	}
	a.delivered = true
	out.Deliver(a.inst, a.reconstruct(frags))
	// Keep nothing but the fact of delivery.
	a.frags, a.echoes, a.readies = nil, nil, nil
	a.echoOf, a.readyOf, a.echoSeen, a.readySeen = nil, nil, nil, nil
}

// reconstruct decodes and runs the re-encoding check; it returns the
// payload or Invalid.
func (a *AVID) reconstruct(frags [][]byte) any {
	a.ops.Decodes++
	payload, err := decode(a.code, a.p.Group.F(), frags, a.p.MaxPayload)
	if err != nil {
		return Invalid{Root: a.readyRoot}
	}
	again, err := encodeWith(a.code, a.p.Group.N(), a.p.Group.F(), payload)
	a.ops.Encodes++
	if err != nil {
		return Invalid{Root: a.readyRoot}
	}
	if root, _ := Commit(a.inst, again); root != a.readyRoot {
		return Invalid{Root: a.readyRoot}
	}
	return payload
}

// Describe renders a payload for simulator traces.
func Describe(payload []byte) string {
	var m wire.AVID
	if err := proto.Unmarshal(payload, &m); err != nil || len(m.Root) != sha256.Size {
		return fmt.Sprintf("garbage(%dB)", len(payload))
	}
	switch m.Kind {
	case wire.AVID_SEND, wire.AVID_ECHO:
		return fmt.Sprintf("%s h=%x frag=%dB", m.Kind, m.Root[:4], len(m.Fragment))
	case wire.AVID_READY:
		return fmt.Sprintf("READY h=%x", m.Root[:4])
	}
	return fmt.Sprintf("garbage(%dB)", len(payload))
}

// ErrNotSender is wrapped by Step errors for an input at a replica that is
// not the instance's sender.
var ErrNotSender = errors.New("avid: input at a replica that is not the sender")
