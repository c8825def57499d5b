package coin

import (
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"testing"

	"github.com/maftia/maftia/crypto/internal/cryptotest"
	"github.com/maftia/maftia/crypto/tsig"
	"pgregory.net/rapid"
)

func deal(t testing.TB, n, f int) (*Coin, []*tsig.SecretShare) {
	t.Helper()
	c, sks, err := Deal(rand.Reader, n, f)
	if err != nil {
		t.Fatal(err)
	}
	return c, sks
}

func shares(sks []*tsig.SecretShare, name []byte, perm []int, k int) []Share {
	out := make([]Share, k)
	for i := range k {
		out[i] = ShareFor(sks[perm[i]], name)
	}
	return out
}

// TestAgreement: any f+1 valid shares give the same value, which equals the
// value derived from the relayed signature.
func TestAgreement(t *testing.T) {
	for _, c := range cryptotest.Configs() {
		t.Run(fmt.Sprintf("n=%d/f=%d", c.N, c.F), func(t *testing.T) {
			cn, sks := deal(t, c.N, c.F)
			name := Name([]byte("aba"), []byte{1}, []byte{7})
			var first Value
			for trial := range 3 {
				sh := shares(sks, name, mrand.Perm(c.N), c.F+1)
				for _, s := range sh {
					if err := cn.VerifyShare(s, name); err != nil {
						t.Fatal(err)
					}
				}
				v, bad, err := cn.Toss(sh, name)
				if err != nil || bad != nil {
					t.Fatal(err, bad)
				}
				if trial == 0 {
					first = v
				} else if v != first {
					t.Fatal("different share sets gave different coins")
				}
			}
		})
	}
}

// TestThresholdProperty (rapid): f+1 shares agree; f shares are refused.
func TestThresholdProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		f := rapid.IntRange(1, 3).Draw(rt, "f")
		n := 3*f + 1
		cn, sks := deal(t, n, f)
		name := Name(rapid.SliceOfN(rapid.Byte(), 0, 16).Draw(rt, "name"))
		p1 := rapid.Permutation(seq(n)).Draw(rt, "p1")
		p2 := rapid.Permutation(seq(n)).Draw(rt, "p2")
		v1, _, err1 := cn.Toss(shares(sks, name, p1, f+1), name)
		v2, _, err2 := cn.Toss(shares(sks, name, p2, f+1), name)
		if err1 != nil || err2 != nil || v1 != v2 {
			rt.Fatalf("f+1 shares: %v %v equal=%v", err1, err2, v1 == v2)
		}
		if _, _, err := cn.Toss(shares(sks, name, p1, f), name); !errors.Is(err, tsig.ErrTooFewShares) {
			rt.Fatalf("f shares: %v", err)
		}
	})
}

var seq = cryptotest.Seq

// TestRobustToss: f Byzantine shares (wrong coin name, relabelled) among
// 2f+1 do not stop or change the toss, and are named.
func TestRobustToss(t *testing.T) {
	cn, sks := deal(t, 7, 2)
	name := Name([]byte("round"), []byte{3})
	want, _, err := cn.Toss(shares(sks, name, seq(7), 3), name)
	if err != nil {
		t.Fatal(err)
	}
	sh := shares(sks, name, seq(7), 5)
	forged := ShareFor(sks[1], name)
	forged.Index = 1 // member 2's share claimed by member 1
	sh[0] = forged
	if err := cn.VerifyShare(ShareFor(sks[2], Name([]byte("round"), []byte{4})), name); !errors.Is(err, tsig.ErrWrongMessage) {
		t.Fatalf("share of another coin: %v", err)
	}
	v, bad, err := cn.Toss(sh, name)
	if err != nil || v != want || len(bad) != 1 || bad[0] != 1 {
		t.Fatalf("v==want %v bad=%v err=%v", v == want, bad, err)
	}
	sig, _ := tsig.CombineVerified(cn.PublicKey(), shares(sks, name, seq(7), 3), name)
	if v2, err := cn.ValueFromSignature(sig, name); err != nil || v2 != want {
		t.Fatal("relayed signature")
	}
	if _, err := cn.ValueFromSignature(sig, Name([]byte("other"))); !errors.Is(err, tsig.ErrInvalidSignature) {
		t.Fatal(err)
	}
}

func TestWrongDST(t *testing.T) {
	pk, _, _ := tsig.Deal(rand.Reader, 4, 2, []byte("MAFTIA-V01-CS01-with-BLS12381G1_XMD:SHA-256_SSWU_RO_QUORUM_"))
	if _, err := New(pk); !errors.Is(err, ErrWrongDST) {
		t.Fatal(err)
	}
}

// TestValueDistribution is a sanity check that bits and leader indices are
// spread out (not a statistical proof).
func TestValueDistribution(t *testing.T) {
	cn, sks := deal(t, 4, 1)
	const tosses = 200
	ones := 0
	leaders := make([]int, 4)
	for i := range tosses {
		name := Name([]byte{byte(i)})
		v, _, err := cn.Toss(shares(sks, name, seq(4), 2), name)
		if err != nil {
			t.Fatal(err)
		}
		ones += int(v.Bit())
		leaders[v.Mod(4)]++
		if v.Bits(1) != uint64(v[0]>>7) || v.Bits(64) != v.Uint64() || v.Bits(0) != 0 {
			t.Fatal("Bits")
		}
	}
	if ones < 60 || ones > 140 {
		t.Fatalf("%d ones in %d tosses", ones, tosses)
	}
	for i, c := range leaders {
		if c < 20 {
			t.Fatalf("leader %d chosen %d times", i, c)
		}
	}
}
