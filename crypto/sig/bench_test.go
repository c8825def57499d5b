package sig

import (
	stded25519 "crypto/ed25519"
	"crypto/rand"
	"fmt"
	"testing"
)

func BenchmarkSign(b *testing.B) {
	_, sk := mustKey(b)
	msg := make([]byte, 64)
	for b.Loop() {
		sk.Sign(msg)
	}
}

func BenchmarkVerifyStdlib(b *testing.B) {
	pub, priv, _ := stded25519.GenerateKey(rand.Reader)
	msg := make([]byte, 64)
	s := stded25519.Sign(priv, msg)
	for b.Loop() {
		if !stded25519.Verify(pub, msg, s) {
			b.Fatal("bad")
		}
	}
}

func BenchmarkVerifyVoiZIP215(b *testing.B) {
	pk, sk := mustKey(b)
	msg := make([]byte, 64)
	s := sk.Sign(msg)
	for b.Loop() {
		if Verify(pk, msg, s) != nil {
			b.Fatal("bad")
		}
	}
}

// BenchmarkBatchVerify reports the cost per batch; divide by k for the
// per-signature figure.
func BenchmarkBatchVerify(b *testing.B) {
	for _, k := range []int{4, 16, 64} {
		pks := make([]PublicKey, k)
		sigs := make([][]byte, k)
		msg := make([]byte, 64)
		for i := range k {
			var sk *PrivateKey
			pks[i], sk = mustKey(b)
			sigs[i] = sk.Sign(msg)
		}
		b.Run(fmt.Sprintf("k=%d", k), func(b *testing.B) {
			for b.Loop() {
				bt := NewBatch(k)
				for i := range k {
					bt.Add(pks[i], msg, sigs[i])
				}
				if all, _ := bt.Verify(nil); !all {
					b.Fatal("bad")
				}
			}
		})
	}
}
