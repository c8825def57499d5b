package avid_test

import (
	"strings"
	"testing"

	"github.com/maftia/maftia/broadcast/avid"
	"github.com/maftia/maftia/sim"
	"github.com/maftia/maftia/sim/simtest"
	"github.com/maftia/maftia/sim/suites"
)

func avidCampaign(t testing.TB, broken string, seeds int, sizes ...sim.Size) *sim.Campaign {
	s, err := suites.Get("avid", suites.Options{Broken: broken})
	if err != nil {
		t.Fatal(err)
	}
	if len(sizes) == 0 {
		sizes = []sim.Size{{N: 4, F: 1}, {N: 7, F: 2}}
		if simtest.Seeds(0) > 0 {
			sizes = append(sizes, sim.Size{N: 10, F: 3})
		}
	}
	return &sim.Campaign{
		Suite:      s,
		Sizes:      sizes,
		Behaviours: append(sim.AllBehaviours(), s.Attacks...),
		Seeds:      seeds,
	}
}

// Validity, agreement, integrity and totality of AVID with f Byzantine
// replicas of every simulator behaviour plus a sender dispersing
// inconsistent fragments, under the adversarial scheduler, n ∈ {4, 7}
// (and 10 when MAFTIA_SIM_SEEDS raises the run).
func TestAVIDPropertiesUnderByzantineReplicas(t *testing.T) {
	sum := simtest.Run(t, avidCampaign(t, "", simtest.Seeds(1200)))
	if sum != nil {
		t.Logf("%d steps, %d messages, max %d packets in flight", sum.Steps, sum.Messages, sum.MaxPending)
	}
}

// An inconsistent sender alone, many seeds: every correct replica delivers
// the same ⊥ (or the same payload), never diverges, never halts.
func TestAVIDInconsistentSenderAgreesOnBottom(t *testing.T) {
	cp := avidCampaign(t, "", simtest.Seeds(300))
	cp.Behaviours = cp.Suite.Attacks
	runs, violations, bottom := 0, 0, 0
	for seed := uint64(0); seed < uint64(cp.Seeds); seed++ {
		res := sim.Run(cp.Suite, cp.ConfigFor(seed))
		runs++
		if !res.OK() {
			violations++
			t.Errorf("seed %d: %v", seed, res.Violations)
		}
		for _, id := range res.Cluster.Correct() {
			for _, d := range res.Cluster.Deliveries(id) {
				if _, ok := d.Value.(avid.Invalid); ok {
					bottom++
				}
			}
		}
	}
	if bottom == 0 {
		t.Fatal("the inconsistent sender never led to a ⊥ delivery: the attack is vacuous")
	}
	t.Logf("%d schedules, %d violations; %d correct-replica deliveries of ⊥", runs, violations, bottom)
}

// The checkers have teeth: an AVID that skips the re-encoding check is
// caught by the inconsistent-fragments sender.
func TestSimulatorCatchesAVIDWithoutReencodeCheck(t *testing.T) {
	cp := avidCampaign(t, "skip-reencode", 300)
	cp.Behaviours = cp.Suite.Attacks
	sum := cp.Run()
	if sum.Violations == 0 {
		t.Fatalf("broken AVID passed %d schedules", sum.Schedules)
	}
	f := sum.Failures[0]
	if !strings.Contains(strings.Join(f.Violations, "\n"), "agreement") || !strings.Contains(f.Trace, "DELIVER") {
		t.Fatalf("failure lacks an agreement violation or a trace: %v\n%s", f.Violations, f.Trace)
	}
	t.Logf("broken variant caught: %s; first failing seed %d: %s", sum, f.Seed, f.Violations[0])
}

// Same seed, same run: byte-identical traces.
func TestSameSeedSameTrace(t *testing.T) {
	cp := avidCampaign(t, "", 1)
	for seed := uint64(0); seed < 20; seed++ {
		cfg := cp.ConfigFor(seed)
		cfg.Trace = true
		a, b := sim.Run(cp.Suite, cfg), sim.Run(cp.Suite, cfg)
		if a.Trace != b.Trace || a.Trace == "" {
			t.Fatalf("seed %d: traces differ (%d vs %d bytes)", seed, len(a.Trace), len(b.Trace))
		}
	}
}

// Communication complexity: per replica AVID sends about (n+1)|m|/(f+1)
// bytes where Bracha's RBC sends (n+1)|m| — checked, not just claimed, for
// a 64 KiB payload (docs/PERFORMANCE.md has the full table).
func TestAVIDBytesPerReplicaAgainstRBC(t *testing.T) {
	const size = 64 << 10
	for _, sz := range []sim.Size{{N: 4, F: 1}, {N: 7, F: 2}, {N: 16, F: 5}} {
		bytesOf := func(proto string) float64 {
			s, err := suites.Get(proto, suites.Options{PayloadSize: size})
			if err != nil {
				t.Fatal(err)
			}
			res := sim.Run(s, sim.Config{N: sz.N, F: sz.F, Seed: 1, NoFaults: true})
			if !res.OK() || res.Stats.Deliveries != uint64(sz.N) {
				t.Fatalf("%s n=%d: %v", proto, sz.N, res.Violations)
			}
			return float64(res.Stats.Bytes) / float64(sz.N)
		}
		a, r := bytesOf("avid"), bytesOf("rbc")
		perPayloadA, perPayloadR := a/size, r/size
		wantA := float64(sz.N+1) / float64(sz.F+1)
		if perPayloadA > 1.05*wantA || perPayloadR < float64(sz.N+1) {
			t.Errorf("n=%d: AVID %.2f×|m| per replica (want ≈ %.2f), RBC %.2f×|m| (want ≥ %d)", sz.N, perPayloadA, wantA, perPayloadR, sz.N+1)
		}
		t.Logf("n=%d f=%d, 64 KiB: AVID %.0f B/replica (%.2f×|m|), RBC %.0f B/replica (%.2f×|m|), RBC/AVID %.1f", sz.N, sz.F, a, perPayloadA, r, perPayloadR, r/a)
	}
}
