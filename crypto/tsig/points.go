package tsig

import (
	"fmt"

	blst "github.com/supranational/blst/bindings/go"
)

// Encoded sizes (compressed points, ZCash/IETF serialization).
const (
	G1Size = blst.BLST_P1_COMPRESS_BYTES // 48: signatures and shares
	G2Size = blst.BLST_P2_COMPRESS_BYTES // 96: public keys
)

// decodeG1 decodes a compressed G1 point and enforces every check blst leaves
// to the caller: length, encoding, on-curve (Uncompress), not the identity,
// and membership in the prime-order subgroup.
func decodeG1(b []byte) (*blst.P1Affine, error) {
	if len(b) != G1Size {
		return nil, fmt.Errorf("%w: G1 length %d, want %d", ErrMalformedPoint, len(b), G1Size)
	}
	p := new(blst.P1Affine).Uncompress(b)
	if p == nil {
		return nil, fmt.Errorf("%w: not a compressed G1 curve point", ErrMalformedPoint)
	}
	if b[0]&0x40 != 0 { // infinity flag; blst accepts only the canonical infinity
		return nil, fmt.Errorf("%w in G1", ErrIdentity)
	}
	if !p.InG1() {
		return nil, fmt.Errorf("%w (G1)", ErrNotInSubgroup)
	}
	return p, nil
}

// decodeG2 is decodeG1 for G2.
func decodeG2(b []byte) (*blst.P2Affine, error) {
	if len(b) != G2Size {
		return nil, fmt.Errorf("%w: G2 length %d, want %d", ErrMalformedPoint, len(b), G2Size)
	}
	p := new(blst.P2Affine).Uncompress(b)
	if p == nil {
		return nil, fmt.Errorf("%w: not a compressed G2 curve point", ErrMalformedPoint)
	}
	if b[0]&0x40 != 0 {
		return nil, fmt.Errorf("%w in G2", ErrIdentity)
	}
	if !p.InG2() {
		return nil, fmt.Errorf("%w (G2)", ErrNotInSubgroup)
	}
	return p, nil
}

var (
	g2Gen = blst.P2Generator().ToAffine()
)

// pairingCheck reports whether e(sig, g2) == e(h, pk).
func pairingCheck(sig *blst.P1Affine, h *blst.P1Affine, pk *blst.P2Affine) bool {
	lhs := blst.Fp12MillerLoop(g2Gen, sig)
	rhs := blst.Fp12MillerLoop(pk, h)
	return blst.Fp12FinalVerify(lhs, rhs)
}
