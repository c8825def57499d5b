package sig

import (
	stded25519 "crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func mustKey(t testing.TB) (PublicKey, *PrivateKey) {
	t.Helper()
	pk, sk, err := GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pk, sk
}

func TestSignVerifyRoundTrip(t *testing.T) {
	pk, sk := mustKey(t)
	msg := []byte("hello")
	s := sk.Sign(msg)
	if err := Verify(pk, msg, s); err != nil {
		t.Fatal(err)
	}
	if err := Verify(pk, []byte("hellO"), s); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("other message: %v", err)
	}
	pk2, _ := mustKey(t)
	if err := Verify(pk2, msg, s); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("other key: %v", err)
	}
	if err := Verify(pk, msg, s[:63]); !errors.Is(err, ErrMalformedSignature) {
		t.Fatalf("short sig: %v", err)
	}
	if err := Verify(PublicKey{}, msg, s); !errors.Is(err, ErrMalformedPublicKey) {
		t.Fatalf("zero key: %v", err)
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	pk, sk := mustKey(t)
	pk2, err := UnmarshalPublicKey(pk.Marshal())
	if err != nil || pk2 != pk {
		t.Fatalf("public round trip: %v", err)
	}
	seed := sk.Marshal()
	sk2, err := UnmarshalPrivateKey(seed)
	if err != nil || sk2.Public() != pk {
		t.Fatalf("private round trip: %v", err)
	}
	if _, err := UnmarshalPublicKey(make([]byte, 31)); !errors.Is(err, ErrMalformedPublicKey) {
		t.Fatal(err)
	}
	if _, err := UnmarshalPrivateKey(make([]byte, 64)); !errors.Is(err, ErrMalformedPrivateKey) {
		t.Fatal(err)
	}
	// Not a curve point (y with x^2 = (y^2-1)/(dy^2+1) a non-square).
	notOnCurve, _ := hex.DecodeString("0200000000000000000000000000000000000000000000000000000000000000")
	if _, err := UnmarshalPublicKey(notOnCurve); !errors.Is(err, ErrMalformedPublicKey) {
		t.Fatalf("y=2 should not decode: %v", err)
	}
}

func TestPrivateKeyNeverPrinted(t *testing.T) {
	_, sk := mustKey(t)
	seed := hex.EncodeToString(sk.Marshal())
	for _, s := range []string{sk.String(), fmt.Sprintf("%v", sk), fmt.Sprintf("%+v", sk), fmt.Sprintf("%#v", sk), fmt.Sprint(sk)} {
		if strings.Contains(s, seed[:16]) {
			t.Fatalf("key material printed: %s", s)
		}
	}
	sk.Zeroize()
	if sk.k != nil {
		t.Fatal("not zeroized")
	}
}

// TestDomainSeparation: a signature over one domain or field split never
// verifies for another.
func TestDomainSeparation(t *testing.T) {
	pk, sk := mustKey(t)
	s := sk.SignDomain("rbc/echo", []byte("ab"), []byte("c"))
	if err := VerifyDomain(pk, s, "rbc/echo", []byte("ab"), []byte("c")); err != nil {
		t.Fatal(err)
	}
	if err := VerifyDomain(pk, s, "rbc/echo", []byte("a"), []byte("bc")); !errors.Is(err, ErrBadSignature) {
		t.Fatal("field split ambiguity accepted")
	}
	if err := VerifyDomain(pk, s, "rbc/ready", []byte("ab"), []byte("c")); !errors.Is(err, ErrBadSignature) {
		t.Fatal("cross-domain replay accepted")
	}
}

func TestBatchPerSignatureVerdicts(t *testing.T) {
	const n = 20
	b := NewBatch(n)
	want := make([]bool, n)
	for i := range n {
		pk, sk := mustKey(t)
		msg := []byte{byte(i)}
		s := sk.Sign(msg)
		switch i % 5 {
		case 1:
			s[0] ^= 1 // corrupted
		case 3:
			msg = []byte("other") // another message
		case 4:
			if i == 4 {
				s = s[:10] // malformed
			} else if i == 9 {
				pk = PublicKey{}
			}
		}
		want[i] = i%5 != 1 && i%5 != 3 && i != 4 && i != 9
		b.Add(pk, msg, s)
	}
	all, got := b.Verify(nil)
	if all {
		t.Fatal("batch with bad entries reported all valid")
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d: got %v want %v", i, got[i], want[i])
		}
	}
	good := NewBatch(3)
	for range 3 {
		pk, sk := mustKey(t)
		good.AddDomain(pk, sk.SignDomain("x", []byte("y")), "x", []byte("y"))
	}
	if all, v := good.Verify(nil); !all || len(v) != 3 {
		t.Fatal("good batch rejected")
	}
	if all, _ := NewBatch(0).Verify(nil); !all {
		t.Fatal("empty batch")
	}
}

// order8 is a point of order 8 on edwards25519 (a torsion point).
const order8 = "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"

// TestZIP215SmallOrderEdgeCase constructs a signature that cofactorless
// verification (Go's crypto/ed25519) rejects but cofactored ZIP-215
// verification accepts: A is a point of order 8, R the identity and S = 0.
// Then [S]B - [k]A = -[k]A, which equals R only when 8 | k, while
// [8]([S]B - R - [k]A) is always the identity. Were single verification
// cofactorless and batch verification cofactored, two correct replicas would
// disagree on this signature; with ZIP-215 everywhere, Verify and Batch agree.
func TestZIP215SmallOrderEdgeCase(t *testing.T) {
	a, _ := hex.DecodeString(order8)
	pk, err := UnmarshalPublicKey(a)
	if err != nil {
		t.Fatal(err)
	}
	if !pk.IsWeak() {
		t.Fatal("order-8 point not reported weak")
	}
	signature := make([]byte, 64)
	signature[0] = 1 // R = identity (y = 1), S = 0
	disagreements := 0
	for i := range 32 {
		msg := []byte(fmt.Sprintf("m%d", i))
		stdOK := stded25519.Verify(stded25519.PublicKey(a), msg, signature)
		single := Verify(pk, msg, signature)
		expanded := pk.Expand().Verify(msg, signature)
		b := NewBatch(3) // above smallBatch: voi's batch equation
		b.Add(pk, msg, signature)
		for range 2 {
			pk2, sk2 := mustKey(t)
			b.Add(pk2, msg, sk2.Sign(msg))
		}
		all, v := b.Verify(nil)
		if single != nil || expanded != nil || !all || !v[0] {
			t.Fatalf("ZIP-215 single (%v), expanded (%v) and batch (%v) must all accept", single, expanded, v)
		}
		if !stdOK {
			disagreements++
		}
	}
	if disagreements == 0 {
		t.Fatal("expected the cofactorless stdlib verifier to reject some of these signatures")
	}
	t.Logf("cofactorless verification rejected %d/32 signatures that ZIP-215 single and batch verification both accept", disagreements)
}

// TestZIP215NonCanonicalR: R encoded non-canonically (y = p+1 ≡ 1) is
// accepted by ZIP-215 in single and batch verification alike.
func TestZIP215NonCanonicalR(t *testing.T) {
	a, _ := hex.DecodeString(order8)
	pk, _ := UnmarshalPublicKey(a)
	signature := make([]byte, 64)
	// p+1 = 2^255 - 18, little-endian.
	signature[0] = 0xee
	for i := 1; i < 31; i++ {
		signature[i] = 0xff
	}
	signature[31] = 0x7f
	for i := range 16 {
		msg := []byte{byte(i)}
		single := Verify(pk, msg, signature) == nil
		expanded := pk.Expand().Verify(msg, signature) == nil
		b := NewBatch(3) // above smallBatch: voi's batch equation
		b.AddKey(pk.Expand(), msg, signature)
		for range 2 {
			pk2, sk2 := mustKey(t)
			b.Add(pk2, msg, sk2.Sign(msg))
		}
		_, v := b.Verify(nil)
		if single != v[0] || single != expanded || !single {
			t.Fatalf("msg %d: single %v expanded %v batch %v (want all true)", i, single, expanded, v[0])
		}
	}
}

// Expanded keys and small batches (verified one by one) give the verdicts
// of plain single verification, entry by entry, for every batch size
// around smallBatch.
func TestVerifyKeyAndSmallBatchesAgree(t *testing.T) {
	for k := 1; k <= smallBatch+2; k++ {
		b := NewBatch(k)
		var want []bool
		for i := range k {
			pk, sk := mustKey(t)
			msg := []byte{byte(i), byte(k)}
			s := sk.Sign(msg)
			if (i+k)%2 == 0 {
				s[5] ^= 4
			}
			single := Verify(pk, msg, s) == nil
			if got := pk.Expand().Verify(msg, s) == nil; got != single {
				t.Fatalf("k=%d entry %d: expanded %v, plain %v", k, i, got, single)
			}
			want = append(want, single)
			if i%2 == 0 {
				b.AddKey(pk.Expand(), msg, s)
			} else {
				b.Add(pk, msg, s)
			}
		}
		all, got := b.Verify(nil)
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("k=%d entry %d: batch %v, single %v", k, i, got[i], want[i])
			}
		}
		if all != !slices.Contains(want, false) {
			t.Fatalf("k=%d: all=%v for %v", k, all, want)
		}
	}
	if err := (PublicKey{}).Expand().Verify([]byte("m"), make([]byte, 64)); !errors.Is(err, ErrMalformedPublicKey) {
		t.Fatalf("unset expanded key: %v", err)
	}
}
