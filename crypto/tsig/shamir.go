package tsig

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/big"
	"slices"

	blst "github.com/supranational/blst/bindings/go"
)

// order is r, the order of the BLS12-381 groups G1, G2 and GT.
var order, _ = new(big.Int).SetString("73eda753299d7d483339d80809a1d80553bda402fffe5bfeffffffff00000001", 16)

// randomScalar draws a uniform non-zero scalar: 64 random bytes reduced
// modulo r by blst (bias below 2^-256).
func randomScalar(rand io.Reader) (*blst.Scalar, error) {
	var buf [64]byte
	defer clear(buf[:])
	for {
		if _, err := io.ReadFull(rand, buf[:]); err != nil {
			return nil, fmt.Errorf("tsig: randomness: %w", err)
		}
		if s := new(blst.Scalar).FromLEndian(buf[:]); s != nil { // nil iff zero
			return s, nil
		}
	}
}

// smallScalar encodes a small public integer as a scalar.
func smallScalar(v uint64) *blst.Scalar {
	var buf [32]byte
	binary.LittleEndian.PutUint64(buf[:], v)
	var s blst.Scalar
	s.FromLEndian(buf[:]) // v != 0 in all uses; v == 0 leaves s zero, also fine
	return &s
}

// bigScalar converts 0 < v < r to a blst scalar.
func bigScalar(v *big.Int) *blst.Scalar {
	var be [32]byte
	v.FillBytes(be[:])
	slices.Reverse(be[:])
	var s blst.Scalar
	s.FromLEndian(be[:])
	return &s
}

// polynomial is a secret polynomial a_0 + a_1 x + ... + a_{t-1} x^{t-1}
// over Z_r, evaluated with blst's constant-time scalar arithmetic.
type polynomial []*blst.Scalar

func randomPolynomial(rand io.Reader, threshold int) (polynomial, error) {
	p := make(polynomial, threshold)
	for i := range p {
		s, err := randomScalar(rand)
		if err != nil {
			p.zeroize()
			return nil, err
		}
		p[i] = s
	}
	return p, nil
}

// eval computes p(x) by Horner's rule.
func (p polynomial) eval(x uint32) *blst.Scalar {
	xs := smallScalar(uint64(x))
	acc := *p[len(p)-1]
	for i := len(p) - 2; i >= 0; i-- {
		acc.MulAssign(xs)
		acc.AddAssign(p[i])
	}
	return &acc
}

func (p polynomial) zeroize() {
	for _, s := range p {
		if s != nil {
			s.Zeroize()
		}
	}
}

// lagrangeAt returns, for distinct indices S, the coefficients
// λ_i = Π_{j∈S, j≠i} (x−j)/(i−j) mod r, so that Σ λ_i p(i) = p(x) for every
// polynomial p of degree < |S|; x = 0 gives the coefficients that recover
// the secret (in the exponent, the group signature or key). Indices are
// public, so math/big is fine here.
func lagrangeAt(indices []uint32, x uint32) []*blst.Scalar {
	out := make([]*blst.Scalar, len(indices))
	num, den, t := new(big.Int), new(big.Int), new(big.Int)
	xb := new(big.Int).SetUint64(uint64(x))
	for a, i := range indices {
		num.SetInt64(1)
		den.SetInt64(1)
		for b, j := range indices {
			if a == b {
				continue
			}
			num.Mul(num, t.Sub(xb, t.SetUint64(uint64(j))))
			num.Mod(num, order)
			t.SetInt64(int64(i) - int64(j))
			den.Mul(den, t)
			den.Mod(den, order)
		}
		den.ModInverse(den, order)
		num.Mul(num, den)
		num.Mod(num, order)
		out[a] = bigScalar(num)
	}
	return out
}
