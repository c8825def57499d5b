package tenc

import (
	"fmt"
	"io"

	"github.com/cloudflare/circl/group"
	"github.com/maftia/maftia/crypto/internal/lp"
)

var (
	grp = group.Ristretto255
	// gen is the standard generator g; gbar is TDH2's second generator ḡ,
	// obtained by hashing to the group so that nobody knows log_g ḡ.
	gen  = grp.Generator()
	gbar = grp.HashToElement([]byte("TDH2 second generator"), []byte("MAFTIA-V01-tenc-gbar-ristretto255_XMD:SHA-512_R255MAP_RO_"))
)

// Encoded sizes.
const (
	ElementSize = 32
	ScalarSize  = 32
)

// randomScalar draws a uniform scalar from rnd: 64 bytes reduced mod ℓ
// (circl's RandomScalar ignores its reader, so it is not used).
func randomScalar(rnd io.Reader) (group.Scalar, error) {
	var buf [64]byte
	defer clear(buf[:])
	if _, err := io.ReadFull(rnd, buf[:]); err != nil {
		return nil, fmt.Errorf("tenc: randomness: %w", err)
	}
	return grp.HashToScalar(buf[:], []byte("maftia/tenc/random-scalar/v1")), nil
}

func zeroScalar(s group.Scalar) {
	if s != nil {
		s.SetUint64(0)
	}
}

func encElem(e group.Element) []byte {
	b, _ := e.MarshalBinaryCompress()
	return b
}

func encScalar(s group.Scalar) []byte {
	b, _ := s.MarshalBinary()
	return b
}

// decodeElement decodes a canonical ristretto255 encoding and rejects the
// identity. (ristretto255 is prime-order: every valid encoding is in the
// group, so there is no subgroup check to forget.)
func decodeElement(b []byte) (group.Element, error) {
	if len(b) != ElementSize {
		return nil, fmt.Errorf("%w: length %d", ErrMalformedPoint, len(b))
	}
	e := grp.NewElement()
	if err := e.UnmarshalBinary(b); err != nil {
		return nil, fmt.Errorf("%w: not a canonical ristretto255 encoding", ErrMalformedPoint)
	}
	if e.IsIdentity() {
		return nil, ErrIdentity
	}
	return e, nil
}

func decodeScalar(b []byte) (group.Scalar, error) {
	s := grp.NewScalar()
	if len(b) != ScalarSize || s.UnmarshalBinary(b) != nil {
		return nil, ErrMalformedScalar
	}
	return s, nil
}

// dleq is a Chaum–Pedersen proof (Fiat–Shamir) that log_g1 X1 = log_g2 X2.
type dleq struct{ e, f group.Scalar }

// challenge hashes the whole statement and the commitments with a domain
// tag and a length-prefixed transcript, so proofs for one context (another
// ciphertext, label, index or key) never verify in another.
func challenge(domain string, ctx [][]byte, g1, x1, g2, x2, a1, a2 group.Element) group.Scalar {
	fields := append(append([][]byte{}, ctx...), encElem(g1), encElem(x1), encElem(g2), encElem(x2), encElem(a1), encElem(a2))
	return grp.HashToScalar(lp.Encode(domain, fields...), []byte("maftia/tenc/dleq-challenge/v1"))
}

func proveDLEQ(rnd io.Reader, domain string, ctx [][]byte, g1, x1, g2, x2 group.Element, x group.Scalar) (dleq, error) {
	s, err := randomScalar(rnd)
	if err != nil {
		return dleq{}, err
	}
	defer zeroScalar(s)
	a1 := grp.NewElement().Mul(g1, s)
	a2 := grp.NewElement().Mul(g2, s)
	e := challenge(domain, ctx, g1, x1, g2, x2, a1, a2)
	f := grp.NewScalar().Mul(x, e)
	f.Add(f, s)
	return dleq{e: e, f: f}, nil
}

func (p dleq) verify(domain string, ctx [][]byte, g1, x1, g2, x2 group.Element) bool {
	// a1 = g1^f / x1^e, a2 = g2^f / x2^e
	ne := grp.NewScalar().Neg(p.e)
	a1 := grp.NewElement().Mul(g1, p.f)
	a1.Add(a1, grp.NewElement().Mul(x1, ne))
	a2 := grp.NewElement().Mul(g2, p.f)
	a2.Add(a2, grp.NewElement().Mul(x2, ne))
	return challenge(domain, ctx, g1, x1, g2, x2, a1, a2).IsEqual(p.e)
}

// lagrangeAt returns Π_{j≠i} (x−j)/(i−j) for each index i (public values).
func lagrangeAt(indices []uint32, x uint32) []group.Scalar {
	out := make([]group.Scalar, len(indices))
	xs := grp.NewScalar().SetUint64(uint64(x))
	for a, i := range indices {
		num := grp.NewScalar().SetUint64(1)
		den := grp.NewScalar().SetUint64(1)
		is := grp.NewScalar().SetUint64(uint64(i))
		for b, j := range indices {
			if a == b {
				continue
			}
			js := grp.NewScalar().SetUint64(uint64(j))
			num.Mul(num, grp.NewScalar().Sub(xs, js))
			den.Mul(den, grp.NewScalar().Sub(is, js))
		}
		out[a] = num.Mul(num, grp.NewScalar().Inv(den))
	}
	return out
}

// multiExp computes Π pts[i]^coeffs[i].
func multiExp(pts []group.Element, coeffs []group.Scalar) group.Element {
	acc := grp.Identity()
	for i := range pts {
		acc.Add(acc, grp.NewElement().Mul(pts[i], coeffs[i]))
	}
	return acc
}
