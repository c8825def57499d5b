package cbc_test

import (
	"strings"
	"testing"

	"github.com/maftia/maftia/broadcast/cbc"
	"github.com/maftia/maftia/sim"
	"github.com/maftia/maftia/sim/simtest"
	"github.com/maftia/maftia/sim/suites"
)

func cbcCampaign(t testing.TB, broken string, seeds int) *sim.Campaign {
	s, err := suites.Get("cbc", suites.Options{Broken: broken})
	if err != nil {
		t.Fatal(err)
	}
	sizes := []sim.Size{{N: 4, F: 1}, {N: 7, F: 2}}
	if simtest.Seeds(0) > 0 {
		sizes = append(sizes, sim.Size{N: 10, F: 3})
	}
	return &sim.Campaign{
		Suite:      s,
		Sizes:      sizes,
		Behaviours: append(sim.AllBehaviours(), s.Attacks...),
		Seeds:      seeds,
	}
}

// Validity, consistency and integrity of CBC, and validity of every
// delivered certificate, with f Byzantine replicas of every simulator
// behaviour plus a sender trying to get two payloads certified (helped by
// the other Byzantine replicas), under the adversarial scheduler, n ∈ {4, 7}
// (and 10 when MAFTIA_SIM_SEEDS raises the run).
func TestCBCPropertiesUnderByzantineReplicas(t *testing.T) {
	sum := simtest.Run(t, cbcCampaign(t, "", simtest.Seeds(1200)))
	if sum != nil {
		t.Logf("%d steps, %d messages, max %d packets in flight", sum.Steps, sum.Messages, sum.MaxPending)
	}
}

// The double-certify sender alone, many seeds: it does get its second
// payload certified and delivered in some runs (the attack is not
// vacuous), but never both payloads, so correct replicas never disagree.
func TestCBCDoubleCertifySenderCertifiesAtMostOnePayload(t *testing.T) {
	cp := cbcCampaign(t, "", simtest.Seeds(200))
	cp.Behaviours = cp.Suite.Attacks
	runs, violations, evil := 0, 0, 0
	for seed := uint64(0); seed < uint64(cp.Seeds); seed++ {
		res := sim.Run(cp.Suite, cp.ConfigFor(seed))
		runs++
		if !res.OK() {
			violations++
			t.Errorf("seed %d: %v", seed, res.Violations)
		}
		for _, id := range res.Cluster.Correct() {
			for _, d := range res.Cluster.Deliveries(id) {
				if c, ok := d.Value.(cbc.Certified); ok && strings.HasSuffix(string(c.Value), "-evil") {
					evil++
				}
			}
		}
	}
	if evil == 0 {
		t.Fatal("the double-certify sender never got its second payload delivered: the attack is vacuous")
	}
	t.Logf("%d schedules, %d violations; %d correct-replica deliveries of the sender's second payload", runs, violations, evil)
}

// The checkers have teeth: a CBC whose certificates need only f shares
// lets the double-certify sender get two payloads delivered.
func TestSimulatorCatchesCBCCertifyingWithFShares(t *testing.T) {
	cp := cbcCampaign(t, "certify-with-f", 100)
	cp.Behaviours = cp.Suite.Attacks
	sum := cp.Run()
	if sum.Violations == 0 {
		t.Fatalf("broken CBC passed %d schedules", sum.Schedules)
	}
	f := sum.Failures[0]
	if !strings.Contains(strings.Join(f.Violations, "\n"), "consistency") || !strings.Contains(f.Trace, "DELIVER") {
		t.Fatalf("failure lacks a consistency violation or a trace: %v\n%s", f.Violations, f.Trace)
	}
	t.Logf("broken variant caught: %s; first failing seed %d: %s", sum, f.Seed, f.Violations[0])
}

// Same seed, same run: byte-identical traces (keys included).
func TestSameSeedSameTrace(t *testing.T) {
	cp := cbcCampaign(t, "", 1)
	for seed := uint64(0); seed < 10; seed++ {
		cfg := cp.ConfigFor(seed)
		cfg.Trace = true
		a, b := sim.Run(cp.Suite, cfg), sim.Run(cp.Suite, cfg)
		if a.Trace != b.Trace || a.Trace == "" {
			t.Fatalf("seed %d: traces differ (%d vs %d bytes)", seed, len(a.Trace), len(b.Trace))
		}
	}
}
