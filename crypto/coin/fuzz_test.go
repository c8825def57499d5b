package coin

import (
	"crypto/rand"
	"testing"

	"github.com/maftia/maftia/crypto/tsig"
)

var fuzzCoin, fuzzSKs, _ = Deal(rand.Reader, 4, 1)

// FuzzCoinShare decodes arbitrary bytes as a coin share and tosses with it.
func FuzzCoinShare(f *testing.F) {
	name := Name([]byte("x"))
	f.Add(ShareFor(fuzzSKs[0], name).Marshal())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := tsig.UnmarshalShare(b)
		if err != nil {
			return
		}
		_ = fuzzCoin.VerifyShare(s, name)
		_, _, _ = fuzzCoin.Toss([]Share{s, ShareFor(fuzzSKs[1], name)}, name)
	})
}
