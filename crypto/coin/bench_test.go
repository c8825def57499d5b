package coin

import (
	"fmt"
	"testing"

	"github.com/maftia/maftia/crypto/tsig"
)

// BenchmarkTossEndToEnd: one member's view of a toss — make its own share,
// verify the f+1 shares received (batch), combine, derive the value.
func BenchmarkTossEndToEnd(b *testing.B) {
	for _, n := range []int{4, 16, 64} {
		f := (n - 1) / 3
		cn, sks := deal(b, n, f)
		b.Run(fmt.Sprintf("n=%d/t=%d", n, f+1), func(b *testing.B) {
			i := 0
			for b.Loop() {
				name := Name([]byte("bench"), []byte(fmt.Sprint(i)))
				i++
				sh := shares(sks, name, seq(n), f+1)
				for _, e := range tsig.BatchVerifyShares(nil, cn.PublicKey(), sh, name) {
					if e != nil {
						b.Fatal(e)
					}
				}
				if _, err := tsig.CombineVerified(cn.PublicKey(), sh, name); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
