package smr_test

import (
	"strings"
	"testing"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/sim"
	"github.com/maftia/maftia/sim/simtest"
	"github.com/maftia/maftia/sim/suites"
)

// xferCampaign runs RunXfer over seeds and byzantine behaviours and
// reports "N schedules, M violations".
func xferCampaign(t *testing.T, n, f int, seeds int, unsafe bool, byz func(seed uint64) map[core.NodeID]sim.Behaviour) (runs, bad int, first string) {
	t.Helper()
	for seed := uint64(1); seed <= uint64(seeds); seed++ {
		s := suites.ABCXfer()
		s.Unsafe = unsafe
		r := s.RunXfer(n, f, seed, byz(seed))
		runs++
		if len(r.Violations) > 0 {
			bad++
			if first == "" {
				first = strings.Join(r.Violations, "; ")
				t.Logf("seed %d: %s", seed, first)
			}
		} else if testing.Verbose() {
			t.Logf("seed %d: %d transfer(s), final batch %d, %d deliveries", seed, r.Transfers, r.Position, r.Steps)
		}
	}
	return runs, bad, first
}

var xferTampers = []string{"chunk", "cert", "size", "silent"}

// State transfer under the simulator (issue 7; ATTACKS rows 1, 2, 9): one
// correct replica is crashed while the others go far beyond abc's FETCH
// retention and truncate; restarted with an empty disk or its old log, it
// catches up through a certified checkpoint and ends with the same state
// digest as everyone, with the same executions at every position — while
// a Byzantine replica serves wrong chunks, forged certificates, absurd
// sizes or nothing at all.
func TestStateTransferUnderSimulator(t *testing.T) {
	seeds := simtest.Seeds(8)
	runs, bad, first := xferCampaign(t, 4, 1, seeds, false, func(seed uint64) map[core.NodeID]sim.Behaviour {
		if seed%5 == 0 {
			return nil
		}
		return map[core.NodeID]sim.Behaviour{core.NodeID(1 + seed%3): suites.XferTamper{Mode: xferTampers[seed%4]}}
	})
	t.Logf("abc-xfer n=4: %d schedules, %d violations", runs, bad)
	if bad > 0 {
		t.Fatalf("first violation: %s", first)
	}
}

// The checker has teeth: a lagging replica that installs transferred
// states without checking certificates and chunk hashes ends with another
// state than the others when a Byzantine source tampers with chunks.
func TestSimulatorCatchesUncheckedTransfer(t *testing.T) {
	runs, bad, first := xferCampaign(t, 4, 1, 8, true, func(seed uint64) map[core.NodeID]sim.Behaviour {
		return map[core.NodeID]sim.Behaviour{core.NodeID(1 + seed%3): suites.XferTamper{Mode: "chunk"}}
	})
	if bad == 0 {
		t.Fatalf("unchecked transfer not caught in %d schedules", runs)
	}
	t.Logf("broken variant caught in %d of %d schedules: %s", bad, runs, first)
}

// The same with n = 7, f = 2: two Byzantine sources at once (one
// tampering, one silent) besides the crashed replica.
func TestStateTransferUnderSimulatorN7(t *testing.T) {
	if testing.Short() {
		t.Skip("n=7 schedules take seconds each")
	}
	runs, bad, first := xferCampaign(t, 7, 2, simtest.Seeds(2), false, func(seed uint64) map[core.NodeID]sim.Behaviour {
		return map[core.NodeID]sim.Behaviour{
			core.NodeID(1 + seed%3): suites.XferTamper{Mode: xferTampers[seed%3]},
			5:                       suites.XferTamper{Mode: "silent"},
		}
	})
	t.Logf("abc-xfer n=7: %d schedules, %d violations", runs, bad)
	if bad > 0 {
		t.Fatalf("first violation: %s", first)
	}
}
