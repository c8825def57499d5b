package ttcb

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/maftia/maftia/wire"
)

// Local authentication service (Correia–Veríssimo–Neves, EDCC 2002, §3):
// an authenticated key exchange between a local entity and its TTCB module.
//
//	E → M: ClientHello{eid, X25519 ephemeral e_E, nonce n_E}
//	M → E: ServerHello{mid, ephemeral e_M, nonce n_M, Sig_M(“module” ‖ th)}
//	E → M: ClientAuth{Sig_E(“entity” ‖ th)}
//	th  = SHA-256(domain ‖ mid ‖ eid ‖ e_E ‖ n_E ‖ e_M ‖ n_M)   (fixed-length fields)
//	k_EM ‖ k_ME = HKDF-SHA256(ECDH(e_E, e_M), salt = th, info = “keys”)
//
// The entity knows the module's Ed25519 public key, so a process talking to
// anything but its module (wrong key) refuses the session; the module knows
// each registered entity's public key, so a process cannot claim another
// entity's ID. Every later frame carries HMAC-SHA256 under the direction's
// key over (direction ‖ seq ‖ body) with seq = 1, 2, … per direction, so
// frames cannot be forged, replayed, reordered or reflected.

const (
	localDomain    = "maftia-ttcb-local-v1"
	sigModuleLabel = "maftia-ttcb-local-v1 module"
	sigEntityLabel = "maftia-ttcb-local-v1 entity"
)

func transcript(module uint32, entity EntityID, eE, nE, eM, nM []byte) []byte {
	h := sha256.New()
	h.Write([]byte(localDomain))
	var b [8]byte
	binary.BigEndian.PutUint32(b[:4], module)
	binary.BigEndian.PutUint32(b[4:], uint32(entity))
	h.Write(b[:])
	for _, x := range [][]byte{eE, nE, eM, nM} { // each exactly 32 bytes (checked by decodeLocal)
		h.Write(x)
	}
	return h.Sum(nil)
}

func signed(label string, th []byte) []byte { return append([]byte(label), th...) }

// sessionKeys derives the two direction keys.
func sessionKeys(priv *ecdh.PrivateKey, peerPub, th []byte) (e2m, m2e []byte, err error) {
	pub, err := ecdh.X25519().NewPublicKey(peerPub)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: ephemeral key: %v", ErrUnauthorized, err)
	}
	shared, err := priv.ECDH(pub)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: ecdh: %v", ErrUnauthorized, err)
	}
	k, err := hkdf.Key(sha256.New, shared, th, "maftia-ttcb-local-v1 keys", 64)
	if err != nil {
		return nil, nil, err
	}
	return k[:32], k[32:], nil
}

// sealer authenticates frames in one session.
type sealer struct {
	sendKey, recvKey []byte
	sendDir, recvDir byte
	sendSeq, recvSeq uint64
}

func macFrame(key []byte, dir byte, seq uint64, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	var b [9]byte
	b[0] = dir
	binary.BigEndian.PutUint64(b[1:], seq)
	m.Write([]byte(localDomain))
	m.Write(b[:])
	m.Write(body)
	return m.Sum(nil)
}

func (s *sealer) seal(body []byte) *wire.TTCBLocal {
	s.sendSeq++
	return &wire.TTCBLocal{Frame: &wire.TTCBLocal_Sealed{Sealed: &wire.TTCBSealed{
		Seq: s.sendSeq, Body: body, Mac: macFrame(s.sendKey, s.sendDir, s.sendSeq, body)}}}
}

func (s *sealer) open(f *wire.TTCBLocal) ([]byte, error) {
	sf, ok := f.Frame.(*wire.TTCBLocal_Sealed)
	if !ok {
		return nil, fmt.Errorf("%w: unexpected frame", ErrUnauthorized)
	}
	if !hmac.Equal(sf.Sealed.Mac, macFrame(s.recvKey, s.recvDir, sf.Sealed.Seq, sf.Sealed.Body)) {
		return nil, fmt.Errorf("%w: bad MAC", ErrUnauthorized)
	}
	if sf.Sealed.Seq != s.recvSeq+1 {
		return nil, fmt.Errorf("%w: sequence %d, want %d (replay)", ErrUnauthorized, sf.Sealed.Seq, s.recvSeq+1)
	}
	s.recvSeq++
	return sf.Sealed.Body, nil
}

func verifySig(pub ed25519.PublicKey, label string, th, sig []byte) bool {
	return len(pub) == ed25519.PublicKeySize && ed25519.Verify(pub, signed(label, th), sig)
}
