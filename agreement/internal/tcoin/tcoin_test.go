package tcoin

import (
	"math/rand/v2"
	"testing"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/crypto/coin"
)

// The toss completes from f+1 valid shares whatever f invalid ones are
// mixed in, names each invalid sender once, and agrees with a toss of
// valid shares only.
func TestRobustTossNamesInvalidShares(t *testing.T) {
	c, sks, err := coin.Deal(rand.NewChaCha8([32]byte{3}), 7, 2)
	if err != nil {
		t.Fatal(err)
	}
	name := coin.Name([]byte("t"))
	other := coin.Name([]byte("u"))
	var ops Ops
	var out core.Output

	ref := New(c, name, 7)
	for _, i := range []int{3, 4, 5} {
		ref.Add(core.NodeID(i), coin.ShareFor(sks[i-1], name), false)
	}
	want, ok := ref.Try(3, "x", &ops, &out)
	if !ok {
		t.Fatal("toss of valid shares failed")
	}

	tt := New(c, name, 7)
	// Replicas 1 and 2 send shares whose header is this coin's but whose
	// point belongs to another coin name.
	for _, i := range []int{1, 2} {
		good := coin.ShareFor(sks[i-1], name).Marshal()
		forged := coin.ShareFor(sks[i-1], other).Marshal()
		copy(forged[:len(good)-48], good[:len(good)-48])
		s, err := Decode(c, name, core.NodeID(i), forged)
		if err != nil {
			t.Fatalf("forged share failed the structural check: %v", err)
		}
		tt.Add(core.NodeID(i), s, false)
	}
	tt.Add(3, coin.ShareFor(sks[2], name), false)
	if _, ok := tt.Try(3, "x", &ops, &out); ok {
		t.Fatal("toss completed with one valid share")
	}
	if len(out.Evidence) != 2 || tt.Count() != 1 {
		t.Fatalf("evidence %v, %d shares left", out.Evidence, tt.Count())
	}
	tt.Add(4, coin.ShareFor(sks[3], name), false)
	tt.Add(5, coin.ShareFor(sks[4], name), false)
	got, ok := tt.Try(3, "x", &ops, &out)
	if !ok || got != want || len(out.Evidence) != 2 {
		t.Fatalf("toss %v (want %v), evidence %v", ok, got == want, out.Evidence)
	}
	// Structural checks: index must be the sender, name must match.
	if _, err := Decode(c, name, 4, coin.ShareFor(sks[2], name).Marshal()); err == nil {
		t.Fatal("share relabelled to another sender accepted")
	}
	if _, err := Decode(c, other, 3, coin.ShareFor(sks[2], name).Marshal()); err == nil {
		t.Fatal("share for another coin accepted")
	}
	if _, err := Verify(c, name, 3, coin.ShareFor(sks[2], name).Marshal()); err != nil {
		t.Fatal(err)
	}
}
