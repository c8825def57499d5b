package tenc

import (
	"bytes"
	"crypto/rand"
	"testing"
)

var fuzzPK, fuzzSKs, _ = Deal(rand.Reader, 4, 2)

func FuzzUnmarshalCiphertext(f *testing.F) {
	ct, _ := Encrypt(rand.Reader, fuzzPK, []byte("L"), []byte("hello"))
	f.Add(ct.Marshal())
	f.Add([]byte{1, 0, 0, 0, 0})
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		ct, err := UnmarshalCiphertext(b)
		if err != nil {
			return
		}
		if !bytes.Equal(ct.Marshal(), b) {
			t.Fatal("round trip changed bytes")
		}
		c, err := fuzzPK.Check(ct, ct.Label)
		if err != nil {
			return
		}
		s, err := DecryptShare(rand.Reader, fuzzSKs[0], c)
		if err != nil || VerifyShare(fuzzPK, c, s) != nil {
			t.Fatal("own share for a checked ciphertext rejected")
		}
	})
}

func FuzzUnmarshalShare(f *testing.F) {
	ct, _ := Encrypt(rand.Reader, fuzzPK, nil, []byte("x"))
	c, _ := fuzzPK.Check(ct, nil)
	s, _ := DecryptShare(rand.Reader, fuzzSKs[0], c)
	f.Add(s.Marshal())
	f.Add(make([]byte, ShareSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		sh, err := UnmarshalShare(b)
		if err != nil {
			return
		}
		if !bytes.Equal(sh.Marshal(), b) {
			t.Fatal("round trip changed bytes")
		}
		_ = VerifyShare(fuzzPK, c, sh)
		s2, _ := DecryptShare(rand.Reader, fuzzSKs[1], c)
		_, _, _ = Combine(fuzzPK, c, []Share{sh, s2})
	})
}

func FuzzUnmarshalSecretShare(f *testing.F) {
	f.Add(fuzzSKs[0].Marshal())
	f.Add(make([]byte, SecretShareSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = UnmarshalSecretShare(b, fuzzPK)
	})
}

func FuzzNewPublicKey(f *testing.F) {
	f.Add(fuzzPK.GroupKey(), fuzzPK.ShareKeys()[0], uint8(2))
	f.Fuzz(func(t *testing.T, h, k0 []byte, th uint8) {
		keys := fuzzPK.ShareKeys()
		keys[0] = k0
		_, _ = NewPublicKey(int(th), h, keys)
	})
}
