// Package cryptotest holds helpers shared by the tests of the crypto
// packages: the (n, f) sweep and constructions of hostile encodings.
package cryptotest

import (
	"os"

	blst "github.com/supranational/blst/bindings/go"
)

// Full reports whether the long sweep was requested (MAFTIA_CRYPTO_FULL=1).
func Full() bool { return os.Getenv("MAFTIA_CRYPTO_FULL") == "1" }

// Config is one resilience setting n = 3f+1 with the thresholds used by
// maftia: f+1 (coin, replies, decryption) and 2f+1 (quorum certificates).
type Config struct{ N, F int }

// Configs returns n = 3f+1 for f = 1..10 (n up to 31) when Full, and a
// small subset otherwise, to keep `go test ./crypto/...` fast.
func Configs() []Config {
	if Full() {
		out := make([]Config, 0, 10)
		for f := 1; f <= 10; f++ {
			out = append(out, Config{3*f + 1, f})
		}
		return out
	}
	return []Config{{4, 1}, {7, 2}, {13, 4}}
}

// Thresholds returns f+1 and 2f+1.
func (c Config) Thresholds() []int { return []int{c.F + 1, 2*c.F + 1} }

// NonSubgroupG1 returns the compressed encoding of a point that is on the
// BLS12-381 G1 curve y² = x³ + 4 but not in its prime-order subgroup: it
// tries x = 1, 2, ... until blst's (non-subgroup-checking) decompression
// succeeds; the cofactor is large, so such a point is almost never in G1.
func NonSubgroupG1() []byte {
	for x := byte(1); ; x++ {
		b := make([]byte, blst.BLST_P1_COMPRESS_BYTES)
		b[0] = 0x80 // compressed flag
		b[len(b)-1] = x
		if p := new(blst.P1Affine).Uncompress(b); p != nil && !p.InG1() {
			return b
		}
	}
}

// NonSubgroupG2 is NonSubgroupG1 for G2 (x = x0 + 0·u, encoded c1 || c0).
func NonSubgroupG2() []byte {
	for x := byte(1); ; x++ {
		b := make([]byte, blst.BLST_P2_COMPRESS_BYTES)
		b[0] = 0x80
		b[len(b)-1] = x
		if p := new(blst.P2Affine).Uncompress(b); p != nil && !p.InG2() {
			return b
		}
	}
}

// IdentityG1 and IdentityG2 are the canonical compressed encodings of the
// point at infinity.
func IdentityG1() []byte {
	b := make([]byte, blst.BLST_P1_COMPRESS_BYTES)
	b[0] = 0xc0
	return b
}

// IdentityG2 is the compressed point at infinity of G2.
func IdentityG2() []byte {
	b := make([]byte, blst.BLST_P2_COMPRESS_BYTES)
	b[0] = 0xc0
	return b
}

// NotOnCurveG1 returns a well-framed compressed x for which x³+4 is not a
// square, so no curve point has it.
func NotOnCurveG1() []byte {
	for x := byte(1); ; x++ {
		b := make([]byte, blst.BLST_P1_COMPRESS_BYTES)
		b[0] = 0x80
		b[len(b)-1] = x
		if new(blst.P1Affine).Uncompress(b) == nil {
			return b
		}
	}
}

// Seq returns 0, 1, ..., n-1 (an identity permutation).
func Seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}
