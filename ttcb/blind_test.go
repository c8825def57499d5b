package ttcb

import (
	"testing"
	"time"
)

// The blind-slot record merges overlapping and adjacent spans, stays
// bounded (coarsening the oldest, which only makes the module more
// cautious), and forgets spans no askable execution touches.
func TestBlindSlots(t *testing.T) {
	m := &Module{cfg: Config{F: 1, Retention: 10 * time.Second}, delta: uint64(100 * time.Millisecond)}
	m.markBlind(10, 12)
	m.markBlind(13, 13) // adjacent: merged
	m.markBlind(20, 22)
	m.markBlind(11, 21) // bridges both
	if len(m.blind) != 1 || m.blind[0] != (slotSpan{10, 22}) {
		t.Fatalf("spans %v", m.blind)
	}
	for _, c := range []struct {
		from, to uint64
		want     bool
	}{{0, 9, false}, {5, 10, true}, {22, 30, true}, {23, 30, false}} {
		if got := m.blindIn(c.from, c.to); got != c.want {
			t.Errorf("blindIn(%d, %d) = %v", c.from, c.to, got)
		}
	}
	for i := range uint64(2 * maxBlindSpans) {
		m.markBlind(100+3*i, 100+3*i)
	}
	if len(m.blind) > maxBlindSpans || !m.blindIn(10, 10) || !m.blindIn(100, 100) || !m.blindIn(100+3*(2*maxBlindSpans-1), 100+3*(2*maxBlindSpans-1)) {
		t.Fatalf("%d spans, first %v", len(m.blind), m.blind[0])
	}
	// A span is kept while an execution touching its last slot may still
	// be asked about: decided by (to+f+1)·Δ, retained Retention after.
	last := m.blind[len(m.blind)-1].to
	keep := (last+uint64(m.cfg.F)+2)*m.delta + uint64(m.cfg.Retention)
	m.pruneBlind(keep)
	if !m.blindIn(last, last) {
		t.Fatal("pruned too early")
	}
	m.pruneBlind(keep + 1)
	if len(m.blind) != 0 {
		t.Fatalf("not pruned: %v", m.blind)
	}
}
