package tsig

import (
	"fmt"
	"testing"
)

var benchN = []int{4, 16, 64}

// benchSetup deals n shares with threshold 2f+1 (f = (n-1)/3).
func benchSetup(b *testing.B, n int) (*PublicKey, []*SecretShare, []Share, []byte) {
	f := (n - 1) / 3
	pk, sks := deal(b, n, 2*f+1)
	msg := []byte("benchmark message")
	return pk, sks, signAll(sks, msg), msg
}

func BenchmarkSignShare(b *testing.B) {
	_, sks, _, msg := benchSetup(b, 4)
	for b.Loop() {
		SignShare(sks[0], msg)
	}
}

func BenchmarkVerifyShare(b *testing.B) {
	pk, _, shares, msg := benchSetup(b, 4)
	for b.Loop() {
		if VerifyShare(pk, shares[0], msg) != nil {
			b.Fatal("bad")
		}
	}
}

func BenchmarkUnmarshalShare(b *testing.B) {
	_, _, shares, _ := benchSetup(b, 4)
	enc := shares[0].Marshal()
	for b.Loop() {
		if _, err := UnmarshalShare(enc); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBatchVerifyShares verifies 2f+1 shares of an n-member group.
func BenchmarkBatchVerifyShares(b *testing.B) {
	for _, n := range benchN {
		pk, _, shares, msg := benchSetup(b, n)
		shares = shares[:pk.Threshold()]
		b.Run(fmt.Sprintf("n=%d/k=%d", n, len(shares)), func(b *testing.B) {
			for b.Loop() {
				for _, e := range BatchVerifyShares(nil, pk, shares, msg) {
					if e != nil {
						b.Fatal(e)
					}
				}
			}
		})
	}
}

// BenchmarkCombineVerified: interpolation only (shares already verified).
func BenchmarkCombineVerified(b *testing.B) {
	for _, n := range benchN {
		pk, _, shares, msg := benchSetup(b, n)
		b.Run(fmt.Sprintf("n=%d/t=%d", n, pk.Threshold()), func(b *testing.B) {
			for b.Loop() {
				if _, err := CombineVerified(pk, shares, msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCombineOptimistic: interpolate unverified shares, verify once.
func BenchmarkCombineOptimistic(b *testing.B) {
	for _, n := range benchN {
		pk, _, shares, msg := benchSetup(b, n)
		b.Run(fmt.Sprintf("n=%d/t=%d", n, pk.Threshold()), func(b *testing.B) {
			for b.Loop() {
				if _, _, err := Combine(pk, shares, msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	pk, _, shares, msg := benchSetup(b, 4)
	sig, _ := CombineVerified(pk, shares, msg)
	for b.Loop() {
		if Verify(pk, sig, msg) != nil {
			b.Fatal("bad")
		}
	}
}

func BenchmarkDeal(b *testing.B) {
	for _, n := range []int{4, 31} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			for b.Loop() {
				deal(b, n, (n-1)/3+1)
			}
		})
	}
}
