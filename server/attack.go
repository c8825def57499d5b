package server

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/maftia/maftia/abc"
	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/crypto/keys"
	"github.com/maftia/maftia/crypto/tsig"
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
)

// Attacks lists the supported attacks.
var Attacks = []Attack{AttackSilent, AttackInvalidShares, AttackCorruptState}

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

func wrapTransport(t transport.Transport, a Attack, self core.NodeID, g core.Group, p *keys.Private) transport.Transport {
	switch a {
	case AttackSilent:
		return silentTransport{t}
	case AttackInvalidShares:
		return &mutatingTransport{Transport: t, n: g.N(), key: p.Reply}
	}
	return t
}

// silentTransport drops every outgoing frame.
type silentTransport struct{ transport.Transport }

func (silentTransport) Send(core.NodeID, []byte)       {}
func (silentTransport) SendMany([]core.NodeID, []byte) {}
func (silentTransport) Broadcast([]byte)               {}

// mutatingTransport replaces the proof share of outgoing STORED messages
// with a well-formed share over other bytes.
type mutatingTransport struct {
	transport.Transport
	n   int
	key *tsig.SecretShare
}

func (m *mutatingTransport) mutate(frame []byte) []byte {
	env, err := wire.DecodeEnvelope(frame, m.n, wire.DefaultMaxPayload)
	if err != nil {
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

func (m *mutatingTransport) Send(to core.NodeID, f []byte) { m.Transport.Send(to, m.mutate(f)) }
func (m *mutatingTransport) SendMany(to []core.NodeID, f []byte) {
	m.Transport.SendMany(to, m.mutate(f))
}
func (m *mutatingTransport) Broadcast(f []byte) { m.Transport.Broadcast(m.mutate(f)) }

// corrupt changes a result so that it differs from every correct one.
func corrupt(b []byte) []byte {
	return append(append([]byte(nil), b...), 0xba, 0xd0)
}
