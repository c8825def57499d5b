package server

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/maftia/maftia/abc"
	"github.com/maftia/maftia/broadcast/avid"
	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/crypto/keys"
	"github.com/maftia/maftia/crypto/tsig"
	"github.com/maftia/maftia/hybrid"
	"github.com/maftia/maftia/smr"
	"github.com/maftia/maftia/transport"
	"github.com/maftia/maftia/wire"
)

// Attack turns a replica Byzantine, for the demo and the end-to-end
// tests (ATTACKS.md rows 6, 7). Wrappers are thin, as DESIGN §3 asks: the
// protocol code itself is unchanged.
type Attack string

// The attacks a replica can run.
const (
	AttackNone Attack = ""
	// AttackSilent: the replica sends nothing to peers or clients (it
	// still receives). Not provable; clients see it never answers.
	AttackSilent Attack = "silent"
	// AttackInvalidShares: every STORED message carries a proof share
	// over the wrong bytes; correct replicas detect it when combining and
	// record InvalidProof evidence against the replica.
	AttackInvalidShares Attack = "invalid-shares"
	// AttackCorruptState: the replica signs wrong results for clients.
	// Clients accept only f+1 matching replies, and hold the signed wrong
	// reply as proof against the replica.
	AttackCorruptState Attack = "corrupt-state"
	// AttackEquivocate: every broadcast fragment of the replica's erasure-
	// coded broadcasts (AVID ECHOs) goes out in two versions, the true one
	// to half of the peers and a tampered one to the other half; the
	// receivers of the tampered version catch it by its Merkle proof.
	AttackEquivocate Attack = "equivocate"
	// AttackBadState: to replicas that fetch a checkpoint from it (state
	// transfer), the replica sends a forged certificate and tampered
	// chunks; they check both against the cluster's Quorum key and the
	// certified digest, record InvalidProof evidence and fetch from
	// others. Not in Attacks: it shows only when a replica catches up by
	// state transfer, which a demo run does not provoke
	// (TestEmptyDiskCatchesUpByStateTransfer runs it).
	AttackBadState Attack = "bad-state"
)

// Attacks lists the supported attacks.
var Attacks = []Attack{AttackSilent, AttackInvalidShares, AttackCorruptState, AttackEquivocate}

// ParseAttack checks an attack name ("" or "none" for none).
func ParseAttack(s string) (Attack, error) {
	if s == "" || s == "none" {
		return "", nil
	}
	for _, a := range Attacks {
		if string(a) == s {
			return a, nil
		}
	}
	return "", fmt.Errorf("unknown attack %q (want one of %v)", s, Attacks)
}

func wrapTransport(t transport.Transport, attack func() Attack, g core.Group, p *keys.Private, hybridEngine bool) transport.Transport {
	return &byzTransport{Transport: t, attack: attack, n: g.N(), g: g, key: p.Reply, hybrid: hybridEngine, self: core.NodeID(p.ID)}
}

// byzTransport applies the replica's current attack to outgoing frames:
// silent drops them, invalid-shares replaces the proof share of STORED
// messages with a well-formed share over other bytes.
type byzTransport struct {
	transport.Transport
	attack func() Attack
	n      int
	g      core.Group
	key    *tsig.SecretShare
	self   core.NodeID
	hybrid bool // the hybrid engine: attacks tamper with PROPOSE batches
}

// forgedPropose returns the frame with a forged request (no client
// signature) added to a hybrid PROPOSE batch, or nil for any other frame.
// Correct replicas refuse to vote for the batch and record InvalidProof
// evidence against its owner.
func (m *byzTransport) forgedPropose(frame []byte) []byte {
	if !m.hybrid {
		return nil
	}
	env, err := wire.DecodeEnvelope(frame, m.n, wire.DefaultMaxPayload)
	if err != nil || env.Instance != smr.EngineInstance {
		return nil
	}
	msg, err := hybrid.Decode(env.Payload, hybrid.Limits{MaxRequest: wire.DefaultMaxPayload, MaxRequests: 1 << 20, MaxN: m.n})
	if err != nil || msg.Kind != hybrid.KindPropose {
		return nil
	}
	msg.Requests = append(msg.Requests[:len(msg.Requests):len(msg.Requests)], []byte("maftia/attack/forged-request"))
	env.Payload = hybrid.Encode(msg)
	out, err := wire.EncodeEnvelope(env)
	if err != nil {
		return nil
	}
	return out
}

// equivocal returns the tampered twin of an AVID ECHO frame, or of a
// hybrid PROPOSE (nil if the frame is anything else).
func (m *byzTransport) equivocal(frame []byte) []byte {
	if m.hybrid {
		return m.forgedPropose(frame)
	}
	env, err := wire.DecodeEnvelope(frame, m.n, wire.DefaultMaxPayload)
	if err != nil || !strings.Contains(string(env.Instance), "/avid:") {
		return nil
	}
	msg, err := avid.Decode(env.Payload, m.g, wire.DefaultMaxPayload)
	if err != nil || msg.Kind != wire.AVID_ECHO || len(msg.Fragment) == 0 {
		return nil
	}
	msg.Fragment = append([]byte(nil), msg.Fragment...)
	msg.Fragment[0] ^= 0xff
	env.Payload = avid.Encode(msg)
	out, err := wire.EncodeEnvelope(env)
	if err != nil {
		return nil
	}
	return out
}

// mutate returns the frame to send (nil: drop it).
func (m *byzTransport) mutate(frame []byte) []byte {
	switch m.attack() {
	case AttackSilent:
		return nil
	case AttackBadState:
		return badState(frame, m.n)
	case AttackInvalidShares:
		if forged := m.forgedPropose(frame); forged != nil {
			return forged
		}
	default:
		return frame
	}
	env, err := wire.DecodeEnvelope(frame, m.n, wire.DefaultMaxPayload)
	if err != nil {
		return frame
	}
	// STORED messages travel on the epoch instance itself: order/e:<n>.
	if !env.Instance.Within(smr.EngineInstance) || env.Instance.Depth() != smr.EngineInstance.Depth()+1 {
		return frame
	}
	msg, err := abc.Decode(env.Payload)
	if err != nil || msg.Kind != wire.ABC_STORED {
		return frame
	}
	msg.Share = tsig.SignShare(m.key, []byte("maftia/attack/invalid-share")).Marshal()
	b, err := proto.Marshal(msg)
	if err != nil {
		return frame
	}
	env.Payload = b
	out, err := wire.EncodeEnvelope(env)
	if err != nil {
		return frame
	}
	return out
}

func (m *byzTransport) Send(to core.NodeID, f []byte) {
	if f = m.mutate(f); f != nil {
		m.Transport.Send(to, f)
	}
}

func (m *byzTransport) SendMany(to []core.NodeID, f []byte) {
	if m.attack() == AttackEquivocate && len(to) > 1 {
		if alt := m.equivocal(f); alt != nil {
			half := len(to) / 2
			m.Transport.SendMany(to[:half], f)
			m.Transport.SendMany(to[half:], alt)
			return
		}
	}
	if f = m.mutate(f); f != nil {
		m.Transport.SendMany(to, f)
	}
}

func (m *byzTransport) Broadcast(f []byte) {
	if m.attack() == AttackEquivocate && m.hybrid {
		var peers []core.NodeID
		for _, id := range m.g.Members() {
			if id != m.self {
				peers = append(peers, id)
			}
		}
		m.SendMany(peers, f)
		return
	}
	if f = m.mutate(f); f != nil {
		m.Transport.Broadcast(f)
	}
}

// badState tampers with state-transfer answers: STATUS certificates and
// CHUNK data get one byte flipped.
func badState(frame []byte, n int) []byte {
	env, err := wire.DecodeEnvelope(frame, n, wire.DefaultMaxPayload)
	if err != nil || env.Instance != smr.TransferInstance {
		return frame
	}
	msg, err := smr.DecodeTransfer(env.Payload)
	if err != nil {
		return frame
	}
	switch {
	case msg.Kind == wire.Transfer_STATUS && len(msg.Certificate) > 0:
		msg.Certificate = append([]byte(nil), msg.Certificate...)
		msg.Certificate[len(msg.Certificate)-1] ^= 1
	case msg.Kind == wire.Transfer_CHUNK && len(msg.Data) > 0:
		msg.Data = append([]byte(nil), msg.Data...)
		msg.Data[len(msg.Data)/2] ^= 0x40
	default:
		return frame
	}
	if env.Payload, err = proto.Marshal(msg); err != nil {
		return frame
	}
	out, err := wire.EncodeEnvelope(env)
	if err != nil {
		return frame
	}
	return out
}

// corrupt changes a result so that it differs from every correct one.
func corrupt(b []byte) []byte {
	return append(append([]byte(nil), b...), 0xba, 0xd0)
}
