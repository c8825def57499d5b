package core

import (
	"errors"
	"testing"

	"pgregory.net/rapid"
)

func TestNewGroupRefusesImpossibleResilience(t *testing.T) {
	cases := []struct {
		n, f int
		r    Resilience
		ok   bool
	}{
		{4, 1, Async, true}, {3, 1, Async, false}, {7, 2, Async, true}, {6, 2, Async, false},
		{3, 1, HybridSMR, true}, {2, 1, HybridSMR, false}, {5, 2, HybridSMR, true},
		{3, 1, HybridMulticast, true}, {2, 1, HybridMulticast, false}, {4, 2, HybridMulticast, true},
		{1, 0, Async, true}, {0, 0, Async, false}, {4, -1, Async, false},
		{MaxGroupSize + 1, 1, Async, false},
	}
	for _, c := range cases {
		_, err := NewGroup(c.n, c.f, c.r)
		if (err == nil) != c.ok {
			t.Errorf("NewGroup(%d,%d,%s) err=%v, want ok=%v", c.n, c.f, c.r, err, c.ok)
		}
		if err != nil && !errors.Is(err, ErrResilience) {
			t.Errorf("error %v does not wrap ErrResilience", err)
		}
	}
}

// naiveMinIntersection computes, by brute force over set sizes, the
// smallest possible intersection of two subsets of size q of n elements.
func naiveMinIntersection(n, q int) int {
	best := q
	for overlap := q; overlap >= 0; overlap-- {
		if q+q-overlap <= n {
			best = overlap
		}
	}
	return best
}

// Quorum arithmetic checked against a naive version: two Byzantine quorums
// share a correct replica; a quorum of n−f exists among correct replicas;
// OneCorrect sets contain a correct replica.
func TestQuorumIntersectionProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		f := rapid.IntRange(0, 40).Draw(t, "f")
		n := rapid.IntRange(3*f+1, 3*f+40).Draw(t, "n")
		g := MustGroup(n, f, Async)
		if got := naiveMinIntersection(n, g.ByzQuorum()); got < f+1 {
			t.Fatalf("n=%d f=%d: two ByzQuorums of %d may share only %d < f+1", n, f, g.ByzQuorum(), got)
		}
		if g.ByzQuorum() > n-f {
			t.Fatalf("n=%d f=%d: ByzQuorum %d not reachable by correct replicas", n, f, g.ByzQuorum())
		}
		if got := naiveMinIntersection(n, g.Quorum()); got < f+1 {
			t.Fatalf("n=%d f=%d: two n-f quorums may share only %d", n, f, got)
		}
		if g.OneCorrect() <= f {
			t.Fatal("OneCorrect must exceed f")
		}
	})
}

func TestMembers(t *testing.T) {
	g := MustGroup(4, 1, Async)
	m := g.Members()
	if len(m) != 4 || m[0] != 1 || m[3] != 4 || g.Contains(0) || g.Contains(5) || !g.Contains(4) {
		t.Fatalf("members %v", m)
	}
}
