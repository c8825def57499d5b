package tenc

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/maftia/maftia/crypto/internal/cryptotest"
	"pgregory.net/rapid"
)

func deal(t testing.TB, n, th int) (*PublicKey, []*SecretShare) {
	t.Helper()
	pk, sks, err := Deal(rand.Reader, n, th)
	if err != nil {
		t.Fatal(err)
	}
	return pk, sks
}

func encrypt(t testing.TB, pk *PublicKey, label, msg []byte) *CheckedCiphertext {
	t.Helper()
	ct, err := Encrypt(nil, pk, label, msg)
	if err != nil {
		t.Fatal(err)
	}
	// Go through the wire, as a replica would.
	ct2, err := UnmarshalCiphertext(ct.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	c, err := pk.Check(ct2, label)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func decShares(t testing.TB, sks []*SecretShare, c *CheckedCiphertext, perm []int, k int) []Share {
	t.Helper()
	out := make([]Share, k)
	for i := range k {
		s, err := DecryptShare(nil, sks[perm[i]], c)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = s
	}
	return out
}

var allErrs = []error{ErrBadParams, ErrMalformedCiphertext, ErrMalformedShare, ErrMalformedPoint, ErrMalformedScalar,
	ErrIdentity, ErrInvalidCiphertext, ErrWrongLabel, ErrUnchecked, ErrIndexOutOfRange, ErrDuplicateIndex, ErrWrongKey,
	ErrWrongCiphertext, ErrInvalidShareProof, ErrTooFewShares, ErrDecrypt, ErrInconsistentKeys}

func mustSentinel(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got %v, want %v", what, err, want)
	}
	for _, o := range allErrs {
		if o != want && errors.Is(err, o) {
			t.Fatalf("%s: %v also matches %v", what, err, o)
		}
	}
}

// TestAnyThresholdSharesDecrypt over the (n, f) sweep, threshold f+1 (as
// used by secure causal atomic broadcast) and 2f+1.
func TestAnyThresholdSharesDecrypt(t *testing.T) {
	for _, c := range cryptotest.Configs() {
		for _, th := range c.Thresholds() {
			t.Run(fmt.Sprintf("n=%d/t=%d", c.N, th), func(t *testing.T) {
				pk, sks := deal(t, c.N, th)
				msg := bytes.Repeat([]byte("request "), 100)
				label := []byte("client 7 / seq 3")
				ct := encrypt(t, pk, label, msg)
				for range 2 {
					sh := decShares(t, sks, ct, mrand.Perm(c.N), th)
					pt, bad, err := Combine(pk, ct, sh)
					if err != nil || bad != nil || !bytes.Equal(pt, msg) {
						t.Fatalf("combine: %v bad=%v", err, bad)
					}
				}
			})
		}
	}
}

// TestThresholdProperty (rapid): any t shares decrypt to the plaintext,
// t−1 do not.
func TestThresholdProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		f := rapid.IntRange(1, 3).Draw(rt, "f")
		n := 3*f + 1
		th := rapid.SampledFrom([]int{f + 1, 2*f + 1}).Draw(rt, "t")
		pk, sks := deal(t, n, th)
		msg := rapid.SliceOfN(rapid.Byte(), 0, 200).Draw(rt, "msg")
		label := rapid.SliceOfN(rapid.Byte(), 0, 20).Draw(rt, "label")
		ct := encrypt(t, pk, label, msg)
		perm := rapid.Permutation(seq(n)).Draw(rt, "perm")
		pt, _, err := Combine(pk, ct, decShares(t, sks, ct, perm, th))
		if err != nil || !bytes.Equal(pt, msg) {
			rt.Fatalf("t shares: %v", err)
		}
		if _, _, err := Combine(pk, ct, decShares(t, sks, ct, perm, th-1)); !errors.Is(err, ErrTooFewShares) {
			rt.Fatalf("t-1 shares: %v", err)
		}
	})
}

var seq = cryptotest.Seq

func TestCiphertextRejections(t *testing.T) {
	pk, sks := deal(t, 4, 2)
	label := []byte("L")
	ct, err := Encrypt(nil, pk, label, []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	enc := ct.Marshal()

	_, err = pk.Check(ct, []byte("other label"))
	mustSentinel(t, "wrong label", err, ErrWrongLabel)

	// Relabelled in transit to what the receiver expects: the proof binds
	// the label.
	relabelled := *ct
	relabelled.Label = []byte("M")
	_, err = pk.Check(&relabelled, []byte("M"))
	mustSentinel(t, "relabelled", err, ErrInvalidCiphertext)

	// Tampered payload byte.
	tampered := bytes.Clone(enc)
	tampered[1+4+len(label)+4] ^= 1
	ct2, err := UnmarshalCiphertext(tampered)
	if err != nil {
		t.Fatal(err)
	}
	_, err = pk.Check(ct2, label)
	mustSentinel(t, "tampered payload", err, ErrInvalidCiphertext)

	// Swapped u (valid element, wrong value).
	other, _ := Encrypt(nil, pk, label, []byte("secret"))
	swapped := *ct
	swapped.u = other.u
	_, err = pk.Check(&swapped, label)
	mustSentinel(t, "swapped u", err, ErrInvalidCiphertext)

	// Bad proof scalar.
	badProof := *ct
	badProof.proof.f = grp.NewScalar().Add(ct.proof.f, grp.NewScalar().SetUint64(1))
	_, err = pk.Check(&badProof, label)
	mustSentinel(t, "bad proof", err, ErrInvalidCiphertext)

	uOff := len(enc) - 4*32
	ident := bytes.Clone(enc)
	clear(ident[uOff : uOff+32])
	_, err = UnmarshalCiphertext(ident)
	mustSentinel(t, "identity u", err, ErrIdentity)
	nonCanon := bytes.Clone(enc)
	for i := uOff; i < uOff+32; i++ {
		nonCanon[i] = 0xff
	}
	_, err = UnmarshalCiphertext(nonCanon)
	mustSentinel(t, "malformed u", err, ErrMalformedPoint)
	bigScalar := bytes.Clone(enc)
	for i := len(enc) - 32; i < len(enc); i++ {
		bigScalar[i] = 0xff
	}
	_, err = UnmarshalCiphertext(bigScalar)
	mustSentinel(t, "non-canonical scalar", err, ErrMalformedScalar)
	_, err = UnmarshalCiphertext(enc[:len(enc)-1])
	mustSentinel(t, "truncated", err, ErrMalformedCiphertext)
	huge := bytes.Clone(enc)
	huge[1], huge[2] = 0xff, 0xff
	_, err = UnmarshalCiphertext(huge)
	mustSentinel(t, "huge length", err, ErrMalformedCiphertext)
	_, err = UnmarshalCiphertext(append(bytes.Clone(enc), 0))
	mustSentinel(t, "trailing byte", err, ErrMalformedCiphertext)

	// Mutating the ciphertext after Check does not change what was checked.
	checkedCT, err := pk.Check(ct, label)
	if err != nil {
		t.Fatal(err)
	}
	ct.Label = []byte("mutated")
	if !bytes.Equal(checkedCT.Label(), label) {
		t.Fatal("checked ciphertext follows caller mutation")
	}
	ct.Label = label

	// Unchecked ciphertexts cannot be decrypted: the zero value is refused.
	_, err = DecryptShare(nil, sks[0], &CheckedCiphertext{})
	mustSentinel(t, "unchecked", err, ErrUnchecked)
	_, err = DecryptShare(nil, sks[0], nil)
	mustSentinel(t, "nil", err, ErrUnchecked)
	_, _, err = Combine(pk, &CheckedCiphertext{}, nil)
	mustSentinel(t, "unchecked combine", err, ErrUnchecked)

	// Checked under another key set.
	pk2, _ := deal(t, 4, 2)
	ct3, _ := Encrypt(nil, pk2, label, []byte("x"))
	c3, err := pk2.Check(ct3, label)
	if err != nil {
		t.Fatal(err)
	}
	_, err = DecryptShare(nil, sks[0], c3)
	mustSentinel(t, "other key", err, ErrWrongKey)
}

// TestGarbagePayloadIsAgreedOn: an encryptor that builds a valid TDH2 shell
// around a payload sealed with another key gets ErrDecrypt from every share
// set — correct members agree.
func TestGarbagePayloadIsAgreedOn(t *testing.T) {
	pk, sks := deal(t, 4, 2)
	label := []byte("L")
	ct, _ := Encrypt(nil, pk, label, []byte("hello"))
	other, _ := Encrypt(nil, pk, label, []byte("hello"))
	// A fresh r with a valid proof, around a payload sealed under another
	// ciphertext's key.
	evil := *other
	evil.payload = ct.payload
	r, err := randomScalar(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	evil.u = grp.NewElement().MulGen(r)
	evil.ubar = grp.NewElement().Mul(gbar, r)
	evil.proof, _ = proveDLEQ(rand.Reader, ctDomain, evil.proofContext(), gen, evil.u, gbar, evil.ubar, r)
	c, err := pk.Check(&evil, label)
	if err != nil {
		t.Fatal(err)
	}
	for _, perm := range [][]int{{0, 1}, {2, 3}, {1, 3}} {
		_, _, err := Combine(pk, c, decShares(t, sks, c, perm, 2))
		mustSentinel(t, "garbage payload", err, ErrDecrypt)
	}
}

func TestShareRejections(t *testing.T) {
	pk, sks := deal(t, 4, 2)
	label := []byte("L")
	c := encrypt(t, pk, label, []byte("m"))
	good, _ := DecryptShare(nil, sks[0], c)
	if err := VerifyShare(pk, c, good); err != nil {
		t.Fatal(err)
	}
	rt, err := UnmarshalShare(good.Marshal())
	if err != nil || VerifyShare(pk, c, rt) != nil {
		t.Fatalf("round trip: %v", err)
	}

	c2 := encrypt(t, pk, label, []byte("m"))
	forOther, _ := DecryptShare(nil, sks[0], c2)
	mustSentinel(t, "share for another ciphertext", VerifyShare(pk, c, forOther), ErrWrongCiphertext)

	pk2, sks2 := deal(t, 4, 2)
	c3 := encrypt(t, pk2, label, []byte("m"))
	foreign, _ := DecryptShare(nil, sks2[0], c3)
	foreign.ctTag = good.ctTag
	mustSentinel(t, "share from another key", VerifyShare(pk, c, foreign), ErrWrongKey)

	// Bad DLEQ proof: right headers, perturbed proof.
	badProof := good
	badProof.proof.e = grp.NewScalar().Add(good.proof.e, grp.NewScalar().SetUint64(1))
	mustSentinel(t, "bad DLEQ proof", VerifyShare(pk, c, badProof), ErrInvalidShareProof)
	// Wrong u_i with the proof of the original: proof fails.
	wrongUi := good
	wrongUi.ui = grp.NewElement().Add(good.ui, gen)
	mustSentinel(t, "wrong u_i", VerifyShare(pk, c, wrongUi), ErrInvalidShareProof)
	// Relabelled share.
	relabel := good
	relabel.Index = 2
	mustSentinel(t, "relabelled", VerifyShare(pk, c, relabel), ErrInvalidShareProof)

	for _, idx := range []uint32{0, 5} {
		s := good
		s.Index = idx
		mustSentinel(t, fmt.Sprint("index ", idx), VerifyShare(pk, c, s), ErrIndexOutOfRange)
	}
	_, _, err = Combine(pk, c, []Share{good, good})
	mustSentinel(t, "duplicate", err, ErrDuplicateIndex)

	enc := good.Marshal()
	ident := bytes.Clone(enc)
	clear(ident[4+2*TagSize : 4+2*TagSize+32])
	_, err = UnmarshalShare(ident)
	mustSentinel(t, "identity u_i", err, ErrIdentity)
	mal := bytes.Clone(enc)
	for i := 4 + 2*TagSize; i < 4+2*TagSize+32; i++ {
		mal[i] = 0xff
	}
	_, err = UnmarshalShare(mal)
	mustSentinel(t, "malformed u_i", err, ErrMalformedPoint)
	_, err = UnmarshalShare(enc[:10])
	mustSentinel(t, "short", err, ErrMalformedShare)
	mustSentinel(t, "zero share", VerifyShare(pk, c, Share{Index: 1}), ErrMalformedShare)
}

// TestRobustCombineNamesBadShares: up to f bad shares are skipped and named;
// decryption still completes from the valid ones (ATTACKS.md row 7).
func TestRobustCombineNamesBadShares(t *testing.T) {
	for _, cfg := range cryptotest.Configs() {
		th := cfg.F + 1
		pk, sks := deal(t, cfg.N, th)
		msg := []byte("payload")
		c := encrypt(t, pk, nil, msg)
		sh := decShares(t, sks, c, seq(cfg.N), cfg.N)
		perm := mrand.Perm(cfg.N)
		nbad := 1 + mrand.IntN(cfg.F)
		var wantBad []uint32
		for _, i := range perm[:nbad] {
			sh[i].proof.f = grp.NewScalar().Add(sh[i].proof.f, grp.NewScalar().SetUint64(1))
			wantBad = append(wantBad, sh[i].Index)
		}
		// Put the bad shares first so that Combine meets all of them.
		slices.SortFunc(sh, func(a, b Share) int {
			ab, bb := slices.Contains(wantBad, a.Index), slices.Contains(wantBad, b.Index)
			switch {
			case ab && !bb:
				return -1
			case bb && !ab:
				return 1
			}
			return 0
		})
		pt, bad, err := Combine(pk, c, sh)
		slices.Sort(bad)
		slices.Sort(wantBad)
		if err != nil || !bytes.Equal(pt, msg) || !slices.Equal(bad, wantBad) {
			t.Fatalf("n=%d: err=%v bad=%v want %v", cfg.N, err, bad, wantBad)
		}
	}
}

func TestPublicKeyRoundTrip(t *testing.T) {
	pk, sks := deal(t, 7, 3)
	pk2, err := NewPublicKey(3, pk.GroupKey(), pk.ShareKeys())
	if err != nil {
		t.Fatal(err)
	}
	if pk2.keyID != pk.keyID {
		t.Fatal("key id changed")
	}
	keys := pk.ShareKeys()
	keys[6] = keys[5]
	_, err = NewPublicKey(3, pk.GroupKey(), keys)
	mustSentinel(t, "inconsistent", err, ErrInconsistentKeys)
	keys[6] = make([]byte, 32)
	_, err = NewPublicKey(3, pk.GroupKey(), keys)
	mustSentinel(t, "identity key", err, ErrIdentity)
	_, err = NewPublicKey(8, pk.GroupKey(), pk.ShareKeys())
	mustSentinel(t, "threshold > n", err, ErrBadParams)

	b := sks[1].Marshal()
	sk, err := UnmarshalSecretShare(b, pk2)
	if err != nil || sk.Index() != 2 || !bytes.Equal(sk.VerificationKey(), pk.ShareKeys()[1]) {
		t.Fatal(err)
	}
	b[3] = 3
	_, err = UnmarshalSecretShare(b, pk2)
	mustSentinel(t, "secret under another index", err, ErrInconsistentKeys)
	if s := fmt.Sprintf("%v %+v %#v", sk, sk, sk); strings.Contains(s, fmt.Sprintf("%x", b[4:12])) {
		t.Fatal("secret printed")
	}
}
