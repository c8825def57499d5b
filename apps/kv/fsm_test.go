package kv

import (
	"bytes"
	"testing"

	"pgregory.net/rapid"

	"github.com/maftia/maftia/wire"
)

func do(t testing.TB, s *Store, op *wire.KVOp) *wire.KVResult {
	t.Helper()
	r, err := DecodeResult(s.Apply(1, EncodeOp(op)))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestOperations(t *testing.T) {
	s := New()
	if r := do(t, s, &wire.KVOp{Kind: wire.KVOp_PUT, Key: []byte("a"), Value: []byte("1")}); !r.Ok || r.Revision != 1 {
		t.Fatalf("put %+v", r)
	}
	if r := do(t, s, &wire.KVOp{Kind: wire.KVOp_GET, Key: []byte("a")}); !r.Found || string(r.Value) != "1" {
		t.Fatalf("get %+v", r)
	}
	if r := do(t, s, &wire.KVOp{Kind: wire.KVOp_CAS, Key: []byte("a"), Expected: []byte("0"), Value: []byte("2")}); r.Ok || string(r.Value) != "1" {
		t.Fatalf("failed cas %+v", r)
	}
	if r := do(t, s, &wire.KVOp{Kind: wire.KVOp_CAS, Key: []byte("a"), Expected: []byte("1"), Value: []byte("2")}); !r.Ok {
		t.Fatalf("cas %+v", r)
	}
	if r := do(t, s, &wire.KVOp{Kind: wire.KVOp_CAS, Key: []byte("b"), ExpectAbsent: true, Value: []byte("x")}); !r.Ok {
		t.Fatalf("cas absent %+v", r)
	}
	do(t, s, &wire.KVOp{Kind: wire.KVOp_PUT, Key: []byte("c"), Value: []byte("3")})
	r := do(t, s, &wire.KVOp{Kind: wire.KVOp_RANGE, Key: []byte("a"), End: []byte("c")})
	if len(r.Pairs) != 2 || string(r.Pairs[0].Key) != "a" || string(r.Pairs[1].Value) != "x" {
		t.Fatalf("range %+v", r.Pairs)
	}
	if r := do(t, s, &wire.KVOp{Kind: wire.KVOp_DELETE, Key: []byte("a")}); !r.Ok {
		t.Fatalf("delete %+v", r)
	}
	if r := do(t, s, &wire.KVOp{Kind: wire.KVOp_GET, Key: []byte("a")}); r.Found {
		t.Fatal("deleted key found")
	}
	for _, bad := range [][]byte{{0xff}, EncodeOp(&wire.KVOp{Kind: 42}), EncodeOp(&wire.KVOp{Kind: wire.KVOp_PUT, Key: make([]byte, MaxKey+1)})} {
		r, _ := DecodeResult(s.Apply(1, bad))
		if r.Error == "" {
			t.Errorf("bad op accepted: %+v", r)
		}
	}
}

// Determinism: two stores fed the same operations agree on every result
// and on their snapshots; a snapshot restores the same state.
func TestDeterministicAndSnapshotRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a, b := New(), New()
		ops := rapid.SliceOfN(rapid.Custom(func(t *rapid.T) []byte {
			return EncodeOp(&wire.KVOp{
				Kind:  wire.KVOp_Kind(rapid.IntRange(0, 6).Draw(t, "kind")),
				Key:   []byte(rapid.StringMatching(`[a-d]{0,2}`).Draw(t, "key")),
				Value: []byte(rapid.StringMatching(`[x-z]{0,3}`).Draw(t, "value")),
				End:   []byte(rapid.StringMatching(`[a-e]{0,1}`).Draw(t, "end")),
			})
		}), 0, 40).Draw(t, "ops")
		for _, op := range ops {
			if !bytes.Equal(a.Apply(1, op), b.Apply(1, op)) {
				t.Fatal("results differ")
			}
		}
		sa, _ := a.Snapshot()
		c := New()
		if err := c.Restore(sa); err != nil {
			t.Fatal(err)
		}
		sc, _ := c.Snapshot()
		sb, _ := b.Snapshot()
		if !bytes.Equal(sa, sb) || !bytes.Equal(sa, sc) {
			t.Fatal("snapshots differ")
		}
	})
}

func FuzzApply(f *testing.F) {
	f.Add(EncodeOp(&wire.KVOp{Kind: wire.KVOp_RANGE, Limit: 5}))
	f.Fuzz(func(t *testing.T, op []byte) {
		s := New()
		if _, err := DecodeResult(s.Apply(1, op)); err != nil {
			t.Fatal(err)
		}
	})
}

func FuzzRestore(f *testing.F) {
	s := New()
	s.Apply(1, EncodeOp(&wire.KVOp{Kind: wire.KVOp_PUT, Key: []byte("k"), Value: []byte("v")}))
	snap, _ := s.Snapshot()
	f.Add(snap)
	f.Fuzz(func(t *testing.T, b []byte) {
		s := New()
		if s.Restore(b) == nil {
			again, _ := s.Snapshot()
			if !bytes.Equal(again, b) {
				t.Fatal("accepted a non-canonical snapshot")
			}
		}
	})
}
