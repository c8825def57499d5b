package rbc

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/wire"
)

// Params configures one broadcast instance.
type Params struct {
	Group      core.Group
	Self       core.NodeID
	Sender     core.NodeID
	MaxPayload int // largest payload accepted, in bytes
}

// DefaultParams returns parameters with a 1 MiB payload bound.
func DefaultParams(g core.Group, self, sender core.NodeID) Params {
	return Params{Group: g, Self: self, Sender: sender, MaxPayload: 1 << 20}
}

// Check validates the parameters, refusing groups below n ≥ 3f+1.
func (p Params) Check() error {
	if p.Group.N() < 3*p.Group.F()+1 {
		return fmt.Errorf("rbc: %w: need n ≥ 3f+1, have %s", core.ErrResilience, p.Group)
	}
	if !p.Group.Contains(p.Self) || !p.Group.Contains(p.Sender) {
		return fmt.Errorf("rbc: self %d or sender %d not in %s", p.Self, p.Sender, p.Group)
	}
	if p.MaxPayload <= 0 {
		return errors.New("rbc: MaxPayload must be positive")
	}
	return nil
}

// Digest is the instance-bound hash of a payload.
type Digest [sha256.Size]byte

// DigestOf returns SHA-256("maftia/rbc" ‖ len ‖ instance ‖ len ‖ value).
func DigestOf(inst core.InstanceID, value []byte) Digest {
	h := sha256.New()
	var l [8]byte
	h.Write([]byte("maftia/rbc/v1"))
	binary.BigEndian.PutUint64(l[:], uint64(len(inst)))
	h.Write(l[:])
	h.Write([]byte(inst))
	binary.BigEndian.PutUint64(l[:], uint64(len(value)))
	h.Write(l[:])
	h.Write(value)
	var d Digest
	h.Sum(d[:0])
	return d
}

// RBC is one reliable-broadcast instance at one replica.
type RBC struct {
	inst core.InstanceID
	p    Params

	sentEcho, sentReady, delivered bool
	sendSeen                       bool
	readyDigest                    Digest

	// Per-replica first ECHO/READY digests (index NodeID-1).
	echoSeen, readySeen []bool
	echoOf, readyOf     []Digest
	echoes, readies     map[Digest]int
	values              map[Digest][]byte
}

// New creates an instance. The sender starts it with core.Input{Value: []byte}.
func New(inst core.InstanceID, p Params) (*RBC, error) {
	if err := p.Check(); err != nil {
		return nil, err
	}
	n := p.Group.N()
	return &RBC{
		inst: inst, p: p,
		echoSeen: make([]bool, n), readySeen: make([]bool, n),
		echoOf: make([]Digest, n), readyOf: make([]Digest, n),
		echoes: make(map[Digest]int), readies: make(map[Digest]int),
		values: make(map[Digest][]byte),
	}, nil
}

// Persisted record keys: what a replica said must survive a restart so that
// it never echoes or readies two different digests (ATTACKS.md row 5:
// amnesia is equivocation).
const (
	recordEcho      = "echo"
	recordReady     = "ready"
	recordDelivered = "delivered"
)

// Recover recreates an instance from the records it persisted.
func Recover(inst core.InstanceID, p Params, records []core.Record) (*RBC, error) {
	r, err := New(inst, p)
	if err != nil {
		return nil, err
	}
	for _, rec := range records {
		if rec.Instance != inst || len(rec.Value) != len(Digest{}) {
			return nil, fmt.Errorf("rbc: bad persisted record %q for %s", rec.Key, inst)
		}
		switch rec.Key {
		case recordEcho:
			r.sentEcho = true
		case recordReady:
			r.sentReady = true
			copy(r.readyDigest[:], rec.Value)
		case recordDelivered:
			// Delivered before the restart: never deliver again (integrity
			// across crashes); the instance is finished.
			r.delivered = true
		default:
			return nil, fmt.Errorf("rbc: unknown persisted record %q", rec.Key)
		}
	}
	return r, nil
}

// Finished reports delivery; the host may then drop the instance.
func (r *RBC) Finished() bool { return r.delivered }

// Encode marshals an RBC message.
func Encode(m *wire.RBC) []byte {
	return wire.Marshal(m)
}

// Decode parses and validates an RBC message from the network.
func Decode(b []byte, maxPayload int) (*wire.RBC, error) {
	var m wire.RBC
	if err := proto.Unmarshal(b, &m); err != nil {
		// protobuf-go randomises its error texts between builds; evidence
		// and traces must be reproducible, so report only the fact.
		return nil, fmt.Errorf("%w: rbc: %d bytes are not a protobuf message", wire.ErrMalformed, len(b))
	}
	switch m.Kind {
	case wire.RBC_SEND, wire.RBC_ECHO:
		if len(m.Digest) != 0 {
			return nil, fmt.Errorf("%w: rbc: %s carries a digest", wire.ErrMalformed, m.Kind)
		}
		if len(m.Value) > maxPayload {
			return nil, fmt.Errorf("%w: rbc: payload %d > %d bytes", wire.ErrMalformed, len(m.Value), maxPayload)
		}
	case wire.RBC_READY:
		if len(m.Value) != 0 || len(m.Digest) != len(Digest{}) {
			return nil, fmt.Errorf("%w: rbc: READY needs a %d-byte digest and no value", wire.ErrMalformed, len(Digest{}))
		}
	default:
		return nil, fmt.Errorf("%w: rbc: unknown kind %d", wire.ErrMalformed, m.Kind)
	}
	return &m, nil
}

// Precheck decodes a message off the stepping goroutine (no signatures to
// verify in Bracha's protocol, but decoding is the bulk of the work).
func (r *RBC) Precheck(m core.Message) (any, error) {
	return Decode(m.Payload, r.p.MaxPayload)
}

// Step applies one event.
func (r *RBC) Step(ev core.Event, out *core.Output) error {
	switch e := ev.(type) {
	case core.Input:
		return r.broadcast(e, out)
	case core.Message:
		r.receive(e, out)
		return nil
	default:
		return fmt.Errorf("rbc: unexpected event %s", ev)
	}
}

// upon r-broadcast(m) at the sender: send SEND(m) to all.
func (r *RBC) broadcast(in core.Input, out *core.Output) error {
	v, ok := in.Value.([]byte)
	if !ok {
		return fmt.Errorf("rbc: input value is %T, want []byte", in.Value)
	}
	if r.p.Self != r.p.Sender {
		return fmt.Errorf("rbc: replica %d is not the sender %d of %s", r.p.Self, r.p.Sender, r.inst)
	}
	if len(v) > r.p.MaxPayload {
		return fmt.Errorf("rbc: payload %d bytes > MaxPayload %d", len(v), r.p.MaxPayload)
	}
	out.Broadcast(r.inst, Encode(&wire.RBC{Kind: wire.RBC_SEND, Value: v}))
	return nil
}

func (r *RBC) receive(m core.Message, out *core.Output) {
	if r.delivered || !r.p.Group.Contains(m.From) {
		return
	}
	msg, ok := m.Checked.(*wire.RBC)
	if !ok {
		var err error
		if msg, err = Decode(m.Payload, r.p.MaxPayload); err != nil {
			out.Accuse(m.From, core.Malformed, r.inst, "%v", err)
			return
		}
	}
	switch msg.Kind {
	case wire.RBC_SEND:
		r.onSend(m.From, msg.Value, out)
	case wire.RBC_ECHO:
		r.onEcho(m.From, msg.Value, out)
	case wire.RBC_READY:
		var d Digest
		copy(d[:], msg.Digest)
		r.onReady(m.From, d, out)
	}
}

// upon SEND(m) from the sender, the first time: send ECHO(m) to all.
func (r *RBC) onSend(from core.NodeID, v []byte, out *core.Output) {
	if from != r.p.Sender {
		out.Accuse(from, core.Unexpected, r.inst, "SEND from a replica that is not the sender %d", r.p.Sender)
		return
	}
	d := DigestOf(r.inst, v)
	if r.sendSeen {
		if _, same := r.values[d]; !same {
			out.Accuse(from, core.Equivocation, r.inst, "second SEND with another payload")
		}
		return
	}
	r.sendSeen = true
	if r.sentEcho {
		return // echoed before a restart; never echo twice
	}
	r.sentEcho = true
	r.values[d] = v
	out.PersistRecord(r.inst, recordEcho, d[:])
	out.Broadcast(r.inst, Encode(&wire.RBC{Kind: wire.RBC_ECHO, Value: v}))
}

// upon ECHO(m) from ⌈(n+f+1)/2⌉ replicas and no READY sent: send READY(h).
func (r *RBC) onEcho(from core.NodeID, v []byte, out *core.Output) {
	i := from - 1
	d := DigestOf(r.inst, v)
	if r.echoSeen[i] {
		if r.echoOf[i] != d {
			out.Accuse(from, core.Equivocation, r.inst, "two ECHOs with different payloads")
		}
		return
	}
	r.echoSeen[i], r.echoOf[i] = true, d
	r.echoes[d]++
	if _, have := r.values[d]; !have {
		r.values[d] = v
	}
	if r.echoes[d] >= r.p.Group.ByzQuorum() {
		r.sendReady(d, out)
	}
	r.tryDeliver(out)
}

// upon READY(h) from f+1 replicas and no READY sent: send READY(h)
// (amplification); upon READY(h) from 2f+1 replicas: deliver m with H(m)=h.
func (r *RBC) onReady(from core.NodeID, d Digest, out *core.Output) {
	i := from - 1
	if r.readySeen[i] {
		if r.readyOf[i] != d {
			out.Accuse(from, core.Equivocation, r.inst, "two READYs with different digests")
		}
		return
	}
	r.readySeen[i], r.readyOf[i] = true, d
	r.readies[d]++
	if r.readies[d] >= r.p.Group.OneCorrect() {
		r.sendReady(d, out)
	}
	r.tryDeliver(out)
}

func (r *RBC) sendReady(d Digest, out *core.Output) {
	if r.sentReady {
		return
	}
	r.sentReady, r.readyDigest = true, d
	out.PersistRecord(r.inst, recordReady, d[:])
	out.Broadcast(r.inst, Encode(&wire.RBC{Kind: wire.RBC_READY, Digest: d[:]}))
}

// deliverQuorum is 2f+1 READYs: at least f+1 from correct replicas, which
// guarantees every correct replica eventually gets f+1 and amplifies.
func (r *RBC) deliverQuorum() int { return 2*r.p.Group.F() + 1 }

func (r *RBC) tryDeliver(out *core.Output) {
	if !r.sentReady || r.readies[r.readyDigest] < r.deliverQuorum() {
		return
	}
	v, ok := r.values[r.readyDigest]
	if !ok {
		return // wait for an ECHO carrying the payload
	}
	r.delivered = true
	out.PersistRecord(r.inst, recordDelivered, r.readyDigest[:])
	out.Deliver(r.inst, v)
	// Keep nothing but the fact of delivery.
	r.values, r.echoes, r.readies = nil, nil, nil
	r.echoOf, r.readyOf, r.echoSeen, r.readySeen = nil, nil, nil, nil
}

// Describe renders a payload for simulator traces.
func Describe(payload []byte) string {
	m, err := Decode(payload, wire.DefaultMaxPayload)
	if err != nil {
		return fmt.Sprintf("garbage(%dB)", len(payload))
	}
	switch m.Kind {
	case wire.RBC_READY:
		return fmt.Sprintf("READY h=%x", m.Digest[:4])
	default:
		return fmt.Sprintf("%s v=%q", m.Kind, abbreviate(m.Value))
	}
}

func abbreviate(v []byte) string {
	if len(v) > 16 {
		return fmt.Sprintf("%s…(%dB)", v[:12], len(v))
	}
	return string(v)
}
