package transport

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"time"
)

var (
	// errNoPeerKey: the peer presented no Ed25519 certificate.
	errNoPeerKey = errors.New("transport: peer presented no Ed25519 certificate")
	// errUnknownKey: the peer's key is not pinned for any other member.
	errUnknownKey = errors.New("transport: peer key is not a member's pinned key")
	// errWrongPeerKey: the dialled peer proved a key other than the one
	// pinned for the member we dialled.
	errWrongPeerKey = errors.New("transport: peer key differs from the pinned key")
)

// SelfSignedCert makes a TLS certificate for an Ed25519 identity key,
// signed by the key itself. Nothing checks its validity period or issuer:
// trust comes only from comparing its public key with the pinned one, and
// TLS 1.3's CertificateVerify proves the peer holds the private key.
func SelfSignedCert(identity ed25519.PrivateKey) (tls.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "maftia replica"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, identity.Public(), identity)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("transport: self-signed certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: identity}, nil
}

// peerKey extracts the Ed25519 key from the peer's leaf certificate.
func peerKey(cs tls.ConnectionState) (ed25519.PublicKey, error) {
	if len(cs.PeerCertificates) == 0 {
		return nil, errNoPeerKey
	}
	k, ok := cs.PeerCertificates[0].PublicKey.(ed25519.PublicKey)
	if !ok {
		return nil, errNoPeerKey
	}
	return k, nil
}

// serverTLS accepts any client that proves a key pinned for another member
// (which member it is, and whether it claims to be that member, is checked
// on the hello frame after the handshake).
func (t *TLS) serverTLS() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{t.cert},
		ClientAuth:   tls.RequireAnyClientCert, // no CA: VerifyConnection pins the key
		VerifyConnection: func(cs tls.ConnectionState) error {
			k, err := peerKey(cs)
			if err != nil {
				return err
			}
			if _, ok := t.byKey[string(k)]; !ok {
				return errUnknownKey
			}
			return nil
		},
	}
}

// clientTLS accepts the server only if it proves the key pinned for want.
func (t *TLS) clientTLS(want ed25519.PublicKey) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		Certificates:       []tls.Certificate{t.cert},
		InsecureSkipVerify: true, // no CA, no hostname: VerifyConnection pins the key
		VerifyConnection: func(cs tls.ConnectionState) error {
			k, err := peerKey(cs)
			if err != nil {
				return err
			}
			if !k.Equal(want) {
				return errWrongPeerKey
			}
			return nil
		},
	}
}
