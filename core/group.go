package core

import (
	"errors"
	"fmt"
)

// NodeID identifies a replica within a group. Valid identifiers are 1..n;
// the same number is the replica's share index in threshold schemes.
// The zero value is not a replica (Output uses it to mean "everyone").
type NodeID uint32

// Everyone addresses a message to every member of the group, the sender
// included (a core handles its own broadcast like anyone else's).
const Everyone NodeID = 0

// Resilience names the bound a protocol needs between n and f.
type Resilience int

const (
	// Async is the arbitrary-failure, fully asynchronous configuration:
	// n ≥ 3f+1 (Bracha 1987; Cachin–Kursawe–Shoup 2000).
	Async Resilience = iota + 1
	// HybridSMR is wormhole-aided state machine replication: n ≥ 2f+1
	// (Correia–Neves–Veríssimo, SRDS 2004).
	HybridSMR
	// HybridMulticast is wormhole-aided reliable multicast: n ≥ f+2
	// (Correia et al., SRDS 2002).
	HybridMulticast
)

func (r Resilience) String() string {
	switch r {
	case Async:
		return "async (n ≥ 3f+1)"
	case HybridSMR:
		return "hybrid-smr (n ≥ 2f+1)"
	case HybridMulticast:
		return "hybrid-multicast (n ≥ f+2)"
	}
	return fmt.Sprintf("resilience(%d)", int(r))
}

// MinN is the smallest group that tolerates f Byzantine replicas under r.
func (r Resilience) MinN(f int) int {
	switch r {
	case Async:
		return 3*f + 1
	case HybridSMR:
		return 2*f + 1
	case HybridMulticast:
		return f + 2
	}
	return -1
}

// ErrResilience is returned when n is too small to tolerate f faults.
var ErrResilience = errors.New("core: group cannot tolerate f Byzantine replicas")

// MaxGroupSize bounds n so that bitmasks and per-replica arrays stay small.
const MaxGroupSize = 1024

// Group is a fixed set of n replicas of which at most f may be Byzantine.
type Group struct {
	n, f int
}

// NewGroup returns a group of n replicas tolerating f Byzantine ones under
// resilience bound r, or an error wrapping ErrResilience.
func NewGroup(n, f int, r Resilience) (Group, error) {
	if f < 0 || n < 1 || n > MaxGroupSize {
		return Group{}, fmt.Errorf("%w: n=%d f=%d out of range", ErrResilience, n, f)
	}
	min := r.MinN(f)
	if min < 0 {
		return Group{}, fmt.Errorf("core: unknown resilience %d", int(r))
	}
	if n < min {
		return Group{}, fmt.Errorf("%w: %s needs n ≥ %d for f=%d, got n=%d", ErrResilience, r, min, f, n)
	}
	return Group{n: n, f: f}, nil
}

// MustGroup is NewGroup for constants in tests; it panics on bad input and
// must never be called with values from outside the process.
func MustGroup(n, f int, r Resilience) Group {
	g, err := NewGroup(n, f, r)
	if err != nil {
		panic(err)
	}
	return g
}

// N is the number of replicas.
func (g Group) N() int { return g.n }

// F is the number of Byzantine replicas tolerated.
func (g Group) F() int { return g.f }

// Quorum is n−f: the most replies one can wait for without waiting on a
// faulty replica.
func (g Group) Quorum() int { return g.n - g.f }

// ByzQuorum is ⌈(n+f+1)/2⌉: any two sets of this size intersect in at least
// f+1 replicas, hence in a correct one (Bracha's echo threshold).
func (g Group) ByzQuorum() int { return (g.n + g.f + 2) / 2 }

// OneCorrect is f+1: any set of this size contains a correct replica.
func (g Group) OneCorrect() int { return g.f + 1 }

// Contains reports whether id is a member.
func (g Group) Contains(id NodeID) bool { return id >= 1 && int(id) <= g.n }

// Members lists 1..n.
func (g Group) Members() []NodeID {
	m := make([]NodeID, g.n)
	for i := range m {
		m[i] = NodeID(i + 1)
	}
	return m
}

func (g Group) String() string { return fmt.Sprintf("n=%d f=%d", g.n, g.f) }
