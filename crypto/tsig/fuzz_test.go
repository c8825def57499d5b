package tsig

import (
	"bytes"
	"crypto/rand"
	"testing"

	"github.com/maftia/maftia/crypto/internal/cryptotest"
)

var fuzzPK, fuzzSKs, _ = Deal(rand.Reader, 4, 2, testDST)

func FuzzUnmarshalShare(f *testing.F) {
	good := SignShare(fuzzSKs[0], []byte("m"))
	f.Add(good.Marshal())
	f.Add(withPoint(good, cryptotest.NonSubgroupG1()))
	f.Add(withPoint(good, cryptotest.IdentityG1()))
	f.Add([]byte{0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := UnmarshalShare(b)
		if err != nil {
			return
		}
		if !bytes.Equal(s.Marshal(), b) {
			t.Fatal("round trip changed bytes")
		}
		_ = VerifyShare(fuzzPK, s, []byte("m"))
		_, _, _ = Combine(fuzzPK, []Share{s, SignShare(fuzzSKs[1], []byte("m"))}, []byte("m"))
	})
}

func FuzzUnmarshalSignature(f *testing.F) {
	f.Add(SignShare(fuzzSKs[0], []byte("m")).Marshal()[4+2*TagSize:])
	f.Add(cryptotest.NonSubgroupG1())
	f.Add(cryptotest.IdentityG1())
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := UnmarshalSignature(b)
		if err != nil {
			return
		}
		if !bytes.Equal(s.Marshal(), b) {
			t.Fatal("round trip changed bytes")
		}
		_ = Verify(fuzzPK, s, []byte("m"))
	})
}

// FuzzNewPublicKey feeds arbitrary bytes as the group key and one share key.
func FuzzNewPublicKey(f *testing.F) {
	f.Add(fuzzPK.GroupKey(), fuzzPK.ShareKeys()[0], uint8(2))
	f.Add(cryptotest.NonSubgroupG2(), cryptotest.IdentityG2(), uint8(1))
	f.Fuzz(func(t *testing.T, group, share0 []byte, th uint8) {
		keys := fuzzPK.ShareKeys()
		keys[0] = share0
		_, _ = NewPublicKey(testDST, int(th), group, keys)
	})
}

func FuzzUnmarshalSecretShare(f *testing.F) {
	f.Add(fuzzSKs[0].Marshal())
	f.Add(make([]byte, SecretShareSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		sk, err := UnmarshalSecretShare(b, fuzzPK)
		if err != nil {
			return
		}
		if VerifyShare(fuzzPK, SignShare(sk, []byte("m")), []byte("m")) != nil {
			t.Fatal("accepted secret share signs invalid shares")
		}
	})
}
