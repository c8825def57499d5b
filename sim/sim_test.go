package sim_test

import (
	"strings"
	"testing"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/sim"
	"github.com/maftia/maftia/sim/suites"
)

func rbcSuite(t *testing.T) *sim.Suite {
	s, err := suites.Get("rbc", suites.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The adversary really holds replicas back and partitions them, and every
// behaviour is exercised.
func TestSchedulerAppliesFaults(t *testing.T) {
	cp := &sim.Campaign{Suite: rbcSuite(t), Sizes: []sim.Size{{N: 7, F: 2}}, Behaviours: sim.AllBehaviours(), Seeds: 200}
	sum := cp.Run()
	if sum.Violations != 0 {
		t.Fatal(sum.Report(40))
	}
	if sum.Holds == 0 || sum.Partitions == 0 {
		t.Fatalf("no faults applied: %d holds, %d partitions", sum.Holds, sum.Partitions)
	}
	for _, b := range sim.AllBehaviours() {
		if sum.PerBehav[b.Name()] == 0 {
			t.Errorf("behaviour %s never simulated", b.Name())
		}
	}
	t.Logf("%s; %d holds, %d partitions", sum, sum.Holds, sum.Partitions)
}

// accuser is a correct-looking core that accuses replica 2 of everything.
type accuser struct{ inner core.Protocol }

func (a accuser) Step(ev core.Event, out *core.Output) error {
	out.Accuse(2, core.Equivocation, "rbc:1", "made up")
	return a.inner.Step(ev, out)
}

// The generic invariant flags any accusation of a correct replica.
func TestFalseAccusationIsAViolation(t *testing.T) {
	s := *rbcSuite(t)
	inner := s.NewReplica
	s.NewReplica = func(id core.NodeID, g core.Group) (core.Protocol, error) {
		p, err := inner(id, g)
		return accuser{p}, err
	}
	res := sim.Run(&s, sim.Config{N: 4, F: 1, Seed: 1})
	if res.OK() || !strings.Contains(strings.Join(res.Violations, "\n"), "false accusation") {
		t.Fatalf("violations: %v", res.Violations)
	}
}

// Garbage and equivocation from a Byzantine replica end up as evidence
// against it, and only against it.
func TestByzantineBehavioursLeaveEvidence(t *testing.T) {
	for _, b := range []sim.Behaviour{sim.Garbage{}, sim.Equivocate{}, sim.Twins{}} {
		found := false
		for seed := uint64(0); seed < 20 && !found; seed++ {
			res := sim.Run(rbcSuite(t), sim.Config{N: 4, F: 1, Seed: seed, Byzantine: map[core.NodeID]sim.Behaviour{1: b}})
			if !res.OK() {
				t.Fatal(res)
			}
			for _, e := range res.Cluster.Evidence() {
				if e.Accused == 1 {
					found = true
				}
			}
		}
		if !found {
			t.Errorf("%s: no evidence against the Byzantine replica in 20 seeds", b.Name())
		}
	}
}

func TestParseBehaviour(t *testing.T) {
	for _, s := range []string{"silent", "crash:5", "equivocate", "wrong", "replay", "garbage", "twins"} {
		if _, err := sim.ParseBehaviour(s); err != nil {
			t.Error(err)
		}
	}
	for _, s := range []string{"", "evil", "crash:x", "crash:-1"} {
		if _, err := sim.ParseBehaviour(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}
