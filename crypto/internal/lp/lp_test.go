package lp

import (
	"bytes"
	"testing"

	"pgregory.net/rapid"
)

// TestEncodeInjective checks that distinct (domain, fields) tuples never
// collide: the classic ambiguity ("ab","c") vs ("a","bc") included.
func TestEncodeInjective(t *testing.T) {
	if bytes.Equal(Encode("d", []byte("ab"), []byte("c")), Encode("d", []byte("a"), []byte("bc"))) {
		t.Fatal("field boundary ambiguity")
	}
	if bytes.Equal(Encode("da", []byte("b")), Encode("d", []byte("ab"))) {
		t.Fatal("domain/field boundary ambiguity")
	}
	if bytes.Equal(Encode("d"), Encode("d", nil)) {
		t.Fatal("field count ambiguity")
	}
	rapid.Check(t, func(t *rapid.T) {
		d1 := rapid.String().Draw(t, "d1")
		d2 := rapid.String().Draw(t, "d2")
		f1 := rapid.SliceOfN(rapid.SliceOfN(rapid.Byte(), 0, 6), 0, 4).Draw(t, "f1")
		f2 := rapid.SliceOfN(rapid.SliceOfN(rapid.Byte(), 0, 6), 0, 4).Draw(t, "f2")
		same := d1 == d2 && len(f1) == len(f2)
		if same {
			for i := range f1 {
				if !bytes.Equal(f1[i], f2[i]) {
					same = false
				}
			}
		}
		if eq := bytes.Equal(Encode(d1, f1...), Encode(d2, f2...)); eq != same {
			t.Fatalf("Encode(%q,%x)==Encode(%q,%x) is %v, tuples equal is %v", d1, f1, d2, f2, eq, same)
		}
	})
}
