package tenc

import (
	"fmt"
	"testing"
)

var payload = make([]byte, 1024)

func BenchmarkEncrypt1KiB(b *testing.B) {
	pk, _ := deal(b, 4, 2)
	for b.Loop() {
		if _, err := Encrypt(nil, pk, []byte("L"), payload); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCheckCiphertext(b *testing.B) {
	pk, _ := deal(b, 4, 2)
	ct, _ := Encrypt(nil, pk, []byte("L"), payload)
	for b.Loop() {
		if _, err := pk.Check(ct, []byte("L")); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecryptShare(b *testing.B) {
	pk, sks := deal(b, 4, 2)
	c := encrypt(b, pk, []byte("L"), payload)
	for b.Loop() {
		if _, err := DecryptShare(nil, sks[0], c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyShare(b *testing.B) {
	pk, sks := deal(b, 4, 2)
	c := encrypt(b, pk, []byte("L"), payload)
	s, _ := DecryptShare(nil, sks[0], c)
	for b.Loop() {
		if err := VerifyShare(pk, c, s); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCombine verifies and combines f+1 shares of an n-member group.
func BenchmarkCombine(b *testing.B) {
	for _, n := range []int{4, 16, 64} {
		f := (n - 1) / 3
		pk, sks := deal(b, n, f+1)
		c := encrypt(b, pk, []byte("L"), payload)
		sh := decShares(b, sks, c, seq(n), f+1)
		b.Run(fmt.Sprintf("n=%d/t=%d", n, f+1), func(b *testing.B) {
			for b.Loop() {
				if _, _, err := Combine(pk, c, sh); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
