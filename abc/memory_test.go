package abc_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/sim"
	"github.com/maftia/maftia/sim/suites"
	"github.com/maftia/maftia/wire"
)

// A correct replica held back for a long stretch (ATTACKS row 2): the
// others keep delivering with state bounded by the stated limits — at most
// Window live epochs, Retain retained outputs, and the queue of requests
// not yet delivered — and never buffer for the laggard; once released it
// catches up (FETCH for the epochs whose messages it had to drop) and ends
// with the same log.
func TestHeldBackReplicaBoundsOthersAndCatchesUp(t *testing.T) {
	s := suites.ABC(suites.Options{})
	s.BatchSize = 2
	g := core.MustGroup(4, 1, core.Async)
	c, err := sim.NewCluster(s.Suite, g, 42, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	const held = core.NodeID(4)
	const waves = 12
	maxLive, maxRetained, maxPending := 0, 0, 0
	for w := 0; w < waves; w++ {
		for i := 0; i < 3; i++ {
			req := []byte(fmt.Sprintf("w%d-%d", w, i))
			req = suites.ClientRequestForTest(string(req))
			for _, id := range []core.NodeID{1, 2, 3} {
				c.Input(id, core.Input{Instance: suites.ABCRoot, Value: req})
			}
		}
		// Deliver everything that does not involve the held replica.
		for progress := true; progress; {
			progress = false
			for i := 0; i < len(c.Pending()); i++ {
				if p := c.Pending()[i]; p.From != held && p.To != held {
					c.Deliver(i)
					progress = true
					for _, id := range []core.NodeID{1, 2, 3} {
						m := s.Core(id).Memory()
						maxLive, maxRetained, maxPending = max(maxLive, m.LiveEpochs), max(maxRetained, m.Retained), max(maxPending, m.Pending)
					}
					break
				}
			}
		}
	}
	others := len(logOf(c, 1))
	if others != waves*3 {
		t.Fatalf("the others delivered %d of %d requests while 4 was held", others, waves*3)
	}
	const window, retain = 4, 64 // abc.DefaultParams
	if maxLive > window || maxRetained > retain || maxPending > 3 {
		t.Fatalf("others' state: %d live epochs (bound %d), %d retained outputs (bound %d), %d queued (bound 3)",
			maxLive, window, maxRetained, retain, maxPending)
	}
	t.Logf("held back for %d epochs: others kept ≤ %d live epochs, ≤ %d retained outputs, ≤ %d queued requests; %d packets waited in the network for replica 4",
		s.Core(1).NextEpoch(), maxLive, maxRetained, maxPending, len(c.Pending()))
	// Release: everything is delivered, in random order.
	for len(c.Pending()) > 0 {
		c.Deliver(c.Rng.IntN(len(c.Pending())))
	}
	if got, want := logOf(c, held), logOf(c, 1); len(got) != len(want) {
		t.Fatalf("replica 4 caught up to %d of %d requests (fetched %d epochs)", len(got), len(want), s.Core(held).Ops().Fetched)
	} else {
		for i := range got {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("replica 4 diverges at %d", i)
			}
		}
	}
	t.Logf("replica 4 caught up: %d requests, %d epochs fetched", len(logOf(c, held)), s.Core(held).Ops().Fetched)
}

func logOf(c *sim.Cluster, id core.NodeID) [][]byte {
	var log [][]byte
	for _, d := range c.Deliveries(id) {
		log = append(log, d.Value.(*wire.Batch).Requests...)
	}
	return log
}
