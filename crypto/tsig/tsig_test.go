package tsig

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
	blst "github.com/supranational/blst/bindings/go"
	"pgregory.net/rapid"
)

var testDST = []byte("MAFTIA-V01-TEST-with-BLS12381G1_XMD:SHA-256_SSWU_RO_")

func deal(t testing.TB, n, threshold int) (*PublicKey, []*SecretShare) {
	t.Helper()
	pk, sks, err := Deal(rand.Reader, n, threshold, testDST)
	if err != nil {
		t.Fatal(err)
	}
	return pk, sks
}

func signAll(sks []*SecretShare, msg []byte) []Share {
	out := make([]Share, len(sks))
	for i, sk := range sks {
		out[i] = SignShare(sk, msg)
	}
	return out
}

// pick returns k shares chosen by perm.
func pick(shares []Share, perm []int, k int) []Share {
	out := make([]Share, k)
	for i := range k {
		out[i] = shares[perm[i]]
	}
	return out
}

// TestAnyThresholdSharesGiveTheUniqueSignature is the correctness property
// over the (n, f) sweep: every share verifies, any threshold distinct shares
// combine to the same signature, and it verifies under the group key.
func TestAnyThresholdSharesGiveTheUniqueSignature(t *testing.T) {
	for _, c := range cryptotest.Configs() {
		for _, th := range c.Thresholds() {
			t.Run(fmt.Sprintf("n=%d/t=%d", c.N, th), func(t *testing.T) {
				pk, sks := deal(t, c.N, th)
				msg := []byte("certificate for instance 7")
				shares := signAll(sks, msg)
				for _, e := range BatchVerifyShares(nil, pk, shares, msg) {
					if e != nil {
						t.Fatal(e)
					}
				}
				if err := VerifyShare(pk, shares[c.N-1], msg); err != nil {
					t.Fatal(err)
				}
				var first Signature
				for trial := range 3 {
					perm := mrand.Perm(c.N)
					sig, bad, err := Combine(pk, pick(shares, perm, th), msg)
					if err != nil || bad != nil {
						t.Fatalf("combine: %v bad=%v", err, bad)
					}
					if err := Verify(pk, sig, msg); err != nil {
						t.Fatal(err)
					}
					if trial == 0 {
						first = sig
					} else if !sig.Equal(first) {
						t.Fatal("two share sets gave different signatures")
					}
				}
				// More than threshold shares are fine too.
				sig, _, err := Combine(pk, shares, msg)
				if err != nil || !sig.Equal(first) {
					t.Fatalf("all shares: %v", err)
				}
			})
		}
	}
}

// TestThresholdProperty (rapid): any t shares give the same signature and
// t−1 shares do not suffice (the interpolation of t−1 shares is not a valid
// signature, and Combine refuses them).
func TestThresholdProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		f := rapid.IntRange(1, 3).Draw(rt, "f")
		n := 3*f + 1
		th := rapid.SampledFrom([]int{f + 1, 2*f + 1}).Draw(rt, "t")
		pk, sks := deal(t, n, th)
		msg := rapid.SliceOfN(rapid.Byte(), 0, 32).Draw(rt, "msg")
		shares := signAll(sks, msg)
		p1 := rapid.Permutation(seq(n)).Draw(rt, "p1")
		p2 := rapid.Permutation(seq(n)).Draw(rt, "p2")
		s1, err := CombineVerified(pk, pick(shares, p1, th), msg)
		if err != nil {
			rt.Fatal(err)
		}
		s2, err := CombineVerified(pk, pick(shares, p2, th), msg)
		if err != nil {
			rt.Fatal(err)
		}
		if !s1.Equal(s2) || Verify(pk, s1, msg) != nil {
			rt.Fatal("threshold shares disagree or do not verify")
		}
		less := pick(shares, p1, th-1)
		if _, _, err := Combine(pk, less, msg); !errors.Is(err, ErrTooFewShares) {
			rt.Fatalf("t-1 shares: %v", err)
		}
		if th > 1 {
			if Verify(pk, interpolate(less), msg) == nil {
				rt.Fatal("t-1 shares interpolated to a valid signature")
			}
		}
	})
}

var seq = cryptotest.Seq

func mustSentinel(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got %v, want %v", what, err, want)
	}
	for _, other := range []error{ErrMalformedPoint, ErrNotInSubgroup, ErrIdentity, ErrMalformedShare, ErrIndexOutOfRange,
		ErrDuplicateIndex, ErrWrongKey, ErrWrongMessage, ErrInvalidShare, ErrTooFewShares, ErrInvalidSignature, ErrInconsistentKeys} {
		if other != want && errors.Is(err, other) {
			t.Fatalf("%s: %v also matches %v", what, err, other)
		}
	}
}

// withPoint returns share s's encoding with its point replaced.
func withPoint(s Share, point []byte) []byte {
	b := s.Marshal()
	return append(b[:4+2*TagSize], point...)
}

// TestShareRejections: each hostile share is rejected, naming the cause.
func TestShareRejections(t *testing.T) {
	pk, sks := deal(t, 4, 2)
	msg := []byte("m")
	good := SignShare(sks[0], msg)

	// The check has teeth: blst's own decompression accepts this point.
	if new(blst.P1Affine).Uncompress(cryptotest.NonSubgroupG1()) == nil {
		t.Fatal("test point should decode without a subgroup check")
	}
	_, err := UnmarshalShare(withPoint(good, cryptotest.NonSubgroupG1()))
	mustSentinel(t, "non-subgroup point", err, ErrNotInSubgroup)
	_, err = UnmarshalShare(withPoint(good, cryptotest.IdentityG1()))
	mustSentinel(t, "identity", err, ErrIdentity)
	_, err = UnmarshalShare(withPoint(good, cryptotest.NotOnCurveG1()))
	mustSentinel(t, "not on curve", err, ErrMalformedPoint)
	noFlag := good.Marshal()
	noFlag[4+2*TagSize] &^= 0x80
	_, err = UnmarshalShare(noFlag)
	mustSentinel(t, "uncompressed flag", err, ErrMalformedPoint)
	_, err = UnmarshalShare(good.Marshal()[:ShareSize-1])
	mustSentinel(t, "short", err, ErrMalformedShare)

	// Round trip.
	rt, err := UnmarshalShare(good.Marshal())
	if err != nil || VerifyShare(pk, rt, msg) != nil {
		t.Fatalf("round trip: %v", err)
	}

	other := SignShare(sks[0], []byte("another message"))
	mustSentinel(t, "another message", VerifyShare(pk, other, msg), ErrWrongMessage)

	_, otherSks := deal(t, 4, 2)
	mustSentinel(t, "another key", VerifyShare(pk, SignShare(otherSks[0], msg), msg), ErrWrongKey)

	// A Byzantine member relabels member 2's share as its own: headers are
	// right, the pairing check fails.
	forged := SignShare(sks[1], msg)
	forged.Index = 1
	mustSentinel(t, "relabelled", VerifyShare(pk, forged, msg), ErrInvalidShare)

	// Right headers, point from another message.
	bad := SignShare(sks[0], []byte("x"))
	bad.tag = good.tag
	mustSentinel(t, "forged tag", VerifyShare(pk, bad, msg), ErrInvalidShare)

	for _, idx := range []uint32{0, 5, 1 << 31} {
		s := good
		s.Index = idx
		mustSentinel(t, fmt.Sprint("index ", idx), VerifyShare(pk, s, msg), ErrIndexOutOfRange)
	}
	mustSentinel(t, "zero share", VerifyShare(pk, Share{Index: 1}, msg), ErrMalformedShare)

	s2 := SignShare(sks[1], msg)
	_, _, err = Combine(pk, []Share{good, s2, good}, msg)
	mustSentinel(t, "duplicate", err, ErrDuplicateIndex)
	_, err = CombineVerified(pk, []Share{good, good}, msg)
	mustSentinel(t, "duplicate (verified path)", err, ErrDuplicateIndex)
	_, _, err = Combine(pk, []Share{good}, msg)
	mustSentinel(t, "too few", err, ErrTooFewShares)
}

func TestSignatureRejections(t *testing.T) {
	pk, sks := deal(t, 4, 2)
	msg := []byte("m")
	sig, _, err := Combine(pk, signAll(sks, msg), msg)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := UnmarshalSignature(sig.Marshal())
	if err != nil || Verify(pk, rt, msg) != nil {
		t.Fatalf("round trip: %v", err)
	}
	mustSentinel(t, "other message", Verify(pk, sig, []byte("n")), ErrInvalidSignature)
	pk2, _ := deal(t, 4, 2)
	mustSentinel(t, "other key", Verify(pk2, sig, msg), ErrInvalidSignature)
	_, err = UnmarshalSignature(cryptotest.NonSubgroupG1())
	mustSentinel(t, "non-subgroup", err, ErrNotInSubgroup)
	_, err = UnmarshalSignature(cryptotest.IdentityG1())
	mustSentinel(t, "identity", err, ErrIdentity)
	_, err = UnmarshalSignature(make([]byte, 47))
	mustSentinel(t, "short", err, ErrMalformedPoint)
	mustSentinel(t, "empty", Verify(pk, Signature{}, msg), ErrMalformedPoint)
}

// TestOptimisticCombineNamesExactlyTheBadShares: with up to f invalid shares
// (correct headers, wrong points) mixed among n, Combine still returns the
// unique signature and reports exactly the bad indices; BatchVerifyShares
// reports the same set.
func TestOptimisticCombineNamesExactlyTheBadShares(t *testing.T) {
	for _, c := range cryptotest.Configs() {
		for _, th := range c.Thresholds() {
			pk, sks := deal(t, c.N, th)
			msg := []byte("decide")
			shares := signAll(sks, msg)
			want, _ := CombineVerified(pk, shares, msg)
			perm := mrand.Perm(c.N)
			nbad := 1 + mrand.IntN(c.F)
			var wantBad []uint32
			for _, i := range perm[:nbad] {
				s := SignShare(sks[i], []byte("wrong"))
				s.tag = shares[i].tag
				shares[i] = s
				wantBad = append(wantBad, s.Index)
			}
			slices.Sort(wantBad)
			sig, bad, err := Combine(pk, shares, msg)
			slices.Sort(bad)
			if len(shares)-nbad >= th {
				if err != nil || !sig.Equal(want) {
					t.Fatalf("n=%d t=%d: %v", c.N, th, err)
				}
			}
			// The optimistic path only looks further when the first
			// threshold shares fail; then it names every bad share.
			usedBad := false
			for _, i := range perm[:nbad] {
				usedBad = usedBad || i < th
			}
			if !usedBad {
				if bad != nil {
					t.Fatalf("optimistic path reported %v", bad)
				}
				// Force the fallback by moving a bad share to the front.
				j := perm[0]
				shares[0], shares[j] = shares[j], shares[0]
				_, bad, _ = Combine(pk, shares, msg)
				slices.Sort(bad)
			}
			if !slices.Equal(bad, wantBad) {
				t.Fatalf("n=%d t=%d: bad=%v want %v", c.N, th, bad, wantBad)
			}
			var gotBad []uint32
			for i, e := range BatchVerifyShares(nil, pk, shares, msg) {
				if e != nil {
					mustSentinel(t, "batch", e, ErrInvalidShare)
					gotBad = append(gotBad, shares[i].Index)
				}
			}
			slices.Sort(gotBad)
			if !slices.Equal(gotBad, wantBad) {
				t.Fatalf("batch: bad=%v want %v", gotBad, wantBad)
			}
		}
	}
	// Not enough valid shares left: the error names them too.
	pk, sks := deal(t, 4, 3)
	msg := []byte("m")
	shares := signAll(sks, msg)[:3]
	bad := SignShare(sks[2], []byte("x"))
	bad.tag = shares[2].tag
	shares[2] = bad
	_, badIdx, err := Combine(pk, shares, msg)
	mustSentinel(t, "too few valid", err, ErrTooFewShares)
	if !slices.Equal(badIdx, []uint32{3}) {
		t.Fatalf("bad = %v", badIdx)
	}
}

// TestBrokenCombinerIsCaught shows the checks have teeth: a combiner that
// skipped the duplicate-index check would let one share count twice; the
// interpolation over a duplicated index is not the group signature.
func TestBrokenCombinerIsCaught(t *testing.T) {
	pk, sks := deal(t, 4, 2)
	msg := []byte("m")
	s := SignShare(sks[0], msg)
	dup := []Share{s, s}
	func() {
		defer func() { _ = recover() }() // Lagrange over repeated index is undefined
		if sig := interpolate(dup); sig.p != nil && Verify(pk, sig, msg) == nil {
			t.Fatal("one share counted twice produced a valid signature")
		}
	}()
	if _, err := CombineVerified(pk, dup, msg); !errors.Is(err, ErrDuplicateIndex) {
		t.Fatal(err)
	}
}

func TestPublicKeyRoundTripAndValidation(t *testing.T) {
	pk, sks := deal(t, 7, 3)
	pk2, err := NewPublicKey(pk.DST(), pk.Threshold(), pk.GroupKey(), pk.ShareKeys())
	if err != nil {
		t.Fatal(err)
	}
	if pk2.KeyID() != pk.KeyID() || pk2.N() != 7 {
		t.Fatal("round trip changed the key")
	}
	msg := []byte("m")
	if err := VerifyShare(pk2, SignShare(sks[3], msg), msg); err != nil {
		t.Fatal(err)
	}
	keys := pk.ShareKeys()
	keys[5] = pk.ShareKeys()[4]
	_, err = NewPublicKey(pk.DST(), 3, pk.GroupKey(), keys)
	mustSentinel(t, "share key off the polynomial", err, ErrInconsistentKeys)
	_, err = NewPublicKey(pk.DST(), 3, pk.ShareKeys()[0], pk.ShareKeys())
	mustSentinel(t, "wrong group key", err, ErrInconsistentKeys)
	_, err = NewPublicKey(pk.DST(), 3, cryptotest.NonSubgroupG2(), pk.ShareKeys())
	mustSentinel(t, "non-subgroup G2", err, ErrNotInSubgroup)
	keys = pk.ShareKeys()
	keys[2] = cryptotest.IdentityG2()
	_, err = NewPublicKey(pk.DST(), 3, pk.GroupKey(), keys)
	mustSentinel(t, "identity G2", err, ErrIdentity)
	_, err = NewPublicKey(pk.DST(), 8, pk.GroupKey(), pk.ShareKeys())
	mustSentinel(t, "threshold > n", err, ErrBadParams)
	_, err = NewPublicKey(nil, 3, pk.GroupKey(), pk.ShareKeys())
	mustSentinel(t, "empty DST", err, ErrBadParams)
	if _, _, err := Deal(rand.Reader, 4, 0, testDST); !errors.Is(err, ErrBadParams) {
		t.Fatal(err)
	}
	if _, err := pk.ShareKey(8); !errors.Is(err, ErrIndexOutOfRange) {
		t.Fatal(err)
	}
}

func TestSecretShareRoundTrip(t *testing.T) {
	pk, sks := deal(t, 4, 2)
	b := sks[2].Marshal()
	sk, err := UnmarshalSecretShare(b, pk)
	if err != nil || sk.Index() != 3 {
		t.Fatal(err)
	}
	if !bytes.Equal(sk.VerificationKey(), pk.ShareKeys()[2]) {
		t.Fatal("verification key")
	}
	wrongIdx := bytes.Clone(b)
	wrongIdx[3] = 2
	_, err = UnmarshalSecretShare(wrongIdx, pk)
	mustSentinel(t, "share under another index", err, ErrInconsistentKeys)
	wrongIdx[3] = 9
	_, err = UnmarshalSecretShare(wrongIdx, pk)
	mustSentinel(t, "index out of range", err, ErrIndexOutOfRange)
	zero := bytes.Clone(b)
	clear(zero[4:])
	_, err = UnmarshalSecretShare(zero, pk)
	mustSentinel(t, "zero scalar", err, ErrMalformedShare)
	big := bytes.Clone(b)
	for i := 4; i < len(big); i++ {
		big[i] = 0xff
	}
	_, err = UnmarshalSecretShare(big, pk)
	mustSentinel(t, "scalar >= r", err, ErrMalformedShare)
	if s := fmt.Sprintf("%v %+v %#v %s", sk, sk, sk, sk); strings.Contains(s, fmt.Sprintf("%x", b[4:12])) {
		t.Fatalf("secret printed: %s", s)
	}
	sk.Zeroize()
	if sk.s != (blst.Scalar{}) {
		t.Fatal("not zeroized")
	}
}

func TestLagrangeMatchesNaiveInterpolation(t *testing.T) {
	// Σ λ_i(x) p(i) = p(x) for a random polynomial, checked in the exponent.
	poly, _ := randomPolynomial(rand.Reader, 4)
	idx := []uint32{2, 5, 6, 9}
	pts := make([]*blst.P2Affine, len(idx))
	for i, j := range idx {
		pts[i] = new(blst.P2Affine).From(poly.eval(j))
	}
	for _, x := range []uint32{0, 1, 3, 30} {
		got := blst.P2AffinesMult(pts, lagrangeAt(idx, x), 255).ToAffine()
		want := new(blst.P2Affine).From(poly.eval(x))
		if x == 0 {
			want = new(blst.P2Affine).From(poly[0])
		}
		if !got.Equals(want) {
			t.Fatalf("x=%d", x)
		}
	}
}

// VerifyBatch gives Verify's verdict per signature: all valid in one
// check; a wrong signature, one on another message, one under another key,
// an empty one and two wrong ones that cancel for the naive unweighted sum
// are each named, the others still accepted.
func TestVerifyBatchMatchesVerify(t *testing.T) {
	pk, sks := deal(t, 4, 2)
	other, osks := deal(t, 4, 2)
	var sigs []Signature
	var msgs [][]byte
	for i := range 6 {
		m := []byte(fmt.Sprintf("m%d", i))
		s, err := CombineVerified(pk, signAll(sks[:2], m), m)
		if err != nil {
			t.Fatal(err)
		}
		sigs, msgs = append(sigs, s), append(msgs, m)
	}
	for _, errs := range [][]error{VerifyBatch(pk, sigs, msgs), VerifyBatch(pk, sigs[:1], msgs[:1])} {
		for i, err := range errs {
			if err != nil {
				t.Fatalf("valid signature %d: %v", i, err)
			}
		}
	}
	bad := append([]Signature(nil), sigs...)
	bad[1] = sigs[2] // on another message
	o, _ := CombineVerified(other, signAll(osks[:2], msgs[3]), msgs[3])
	bad[3] = o                                              // under another key
	bad[4] = Signature{}                                    // empty
	delta := blst.HashToG1([]byte("delta"), nil).ToAffine() // σ5+Δ and σ0−Δ: the unweighted sum is unchanged
	var p5, p0 blst.P1
	p5.FromAffine(sigs[5].p)
	bad[5] = Signature{p: p5.Add(delta).ToAffine()}
	p0.FromAffine(sigs[0].p)
	bad[0] = Signature{p: p0.Sub(delta).ToAffine()}
	errs := VerifyBatch(pk, bad, msgs)
	for i, err := range errs {
		want := Verify(pk, bad[i], msgs[i])
		if (err == nil) != (want == nil) {
			t.Fatalf("signature %d: batch %v, single %v", i, err, want)
		}
	}
	if errs[2] != nil || errs[0] == nil || errs[1] == nil || errs[3] == nil || errs[4] == nil || errs[5] == nil {
		t.Fatalf("verdicts %v", errs)
	}
}

func BenchmarkVerifyBatch(b *testing.B) {
	pk, sks := deal(b, 4, 2)
	for _, k := range []int{1, 4, 7} {
		var sigs []Signature
		var msgs [][]byte
		for i := range k {
			m := []byte(fmt.Sprintf("m%d", i))
			s, _ := CombineVerified(pk, signAll(sks[:2], m), m)
			sigs, msgs = append(sigs, s), append(msgs, m)
		}
		b.Run(fmt.Sprintf("k=%d", k), func(b *testing.B) {
			for b.Loop() {
				VerifyBatch(pk, sigs, msgs)
			}
		})
	}
}
