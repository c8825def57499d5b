package core

import (
	"errors"
	"strings"
	"testing"
)

func TestInstanceIDHierarchy(t *testing.T) {
	id := RootN("abc", 0).ChildN("e", 7).Child("acs").ChildN("rbc", 3)
	if id != "abc:0/e:7/acs/rbc:3" {
		t.Fatalf("got %q", id)
	}
	if id.Depth() != 4 || id.Prefix(2) != "abc:0/e:7" || id.Parent() != "abc:0/e:7/acs" {
		t.Fatalf("depth/prefix/parent wrong: %d %q %q", id.Depth(), id.Prefix(2), id.Parent())
	}
	if !id.Within("abc:0/e:7") || id.Within("abc:0/e:70") || !id.Within(id) || !id.Within("") {
		t.Fatal("Within wrong")
	}
	if name, i, ok := id.Last(); name != "rbc" || i != 3 || !ok {
		t.Fatalf("Last = %s %d %v", name, i, ok)
	}
	if p, err := ParseInstanceID(string(id)); err != nil || p != id {
		t.Fatalf("round trip: %v", err)
	}
}

func TestParseInstanceIDRejectsNonCanonical(t *testing.T) {
	bad := []string{"", "/", "a//b", "A", "a:01", "a:-1", "a:", "a:1:2", "a b",
		"a:18446744073709551616", strings.Repeat("a/", 17) + "a", strings.Repeat("x", 300), "a/\x00"}
	for _, s := range bad {
		if _, err := ParseInstanceID(s); !errors.Is(err, ErrInstanceID) {
			t.Errorf("ParseInstanceID(%q) = %v, want ErrInstanceID", s, err)
		}
	}
}

// FuzzParseInstanceID: never panics, and whatever it accepts is canonical
// (re-parsing gives the same ID and Prefix/Parent stay valid).
func FuzzParseInstanceID(f *testing.F) {
	for _, s := range []string{"rbc:1", "abc:0/e:7/acs/rbc:3", "a:01", "", "x/y:0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseInstanceID(s)
		if err != nil {
			return
		}
		if string(id) != s {
			t.Fatalf("accepted %q as %q", s, id)
		}
		for d := 1; d <= id.Depth(); d++ {
			if _, err := ParseInstanceID(string(id.Prefix(d))); err != nil {
				t.Fatalf("prefix %d of %q invalid: %v", d, s, err)
			}
		}
	})
}
