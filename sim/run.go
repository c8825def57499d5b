package sim

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/maftia/maftia/core"
)

// Config is one simulated run.
type Config struct {
	N, F      int
	Seed      uint64
	Byzantine map[core.NodeID]Behaviour
	// SafetySteps bounds the adversarial phase (scheduling decisions);
	// LivenessSteps bounds the fair phase that must end in termination.
	SafetySteps, LivenessSteps int
	// NoFaults disables holds and partitions (the Byzantine replicas stay).
	NoFaults bool
	Trace    bool
}

// Result is what a run produced.
type Result struct {
	Seed       uint64
	Byzantine  string
	Stats      Stats
	Violations []string
	Units      int // Suite.Units of the run, if the suite counts them
	Trace      string
	Cluster    *Cluster
}

// OK reports a run without violations.
func (r *Result) OK() bool { return len(r.Violations) == 0 }

func (r *Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d byz=%s: %d steps, %d messages (%d B), %d deliveries, %d dropped",
		r.Seed, r.Byzantine, r.Stats.Steps, r.Stats.Messages, r.Stats.Bytes, r.Stats.Deliveries, r.Stats.Dropped)
	for _, v := range r.Violations {
		fmt.Fprintf(&b, "\n  VIOLATION: %s", v)
	}
	return b.String()
}

// scheduler is the adversary of the safety phase.
type scheduler struct {
	rng       *rand.Rand
	c         *Cluster
	held      map[core.NodeID]int // replica → steps left
	partition map[core.NodeID]int // replica → side; nil when none
	partLeft  int
}

func (s *scheduler) blocked(p *Packet) bool {
	if s.held[p.From] > 0 || s.held[p.To] > 0 {
		return true
	}
	if s.partition != nil {
		a, okA := s.partition[p.From]
		b, okB := s.partition[p.To]
		if okA && okB && a != b {
			return true
		}
	}
	return false
}

// perturb starts and ends holds and partitions of correct replicas. At most
// f correct replicas are held at once beyond the Byzantine ones, so the
// adversary slows the run down without ever blocking it forever.
func (s *scheduler) perturb() {
	for id, left := range s.held {
		if left <= 1 {
			delete(s.held, id)
		} else {
			s.held[id] = left - 1
		}
	}
	if s.partition != nil {
		s.partLeft--
		if s.partLeft <= 0 {
			s.partition = nil
		}
	}
	correct := s.c.Correct()
	if len(s.held) < s.c.Group.F() && s.rng.IntN(200) == 0 {
		s.held[correct[s.rng.IntN(len(correct))]] = 20 + s.rng.IntN(400)
		s.c.stats.Holds++
	}
	if s.partition == nil && s.rng.IntN(400) == 0 && len(correct) > 1 {
		s.partition = map[core.NodeID]int{}
		for _, id := range correct {
			s.partition[id] = s.rng.IntN(2)
		}
		s.partLeft = 20 + s.rng.IntN(300)
		s.c.stats.Partitions++
	}
}

// choose picks the next packet to deliver among the unblocked ones: the
// oldest, the newest, one from a Byzantine sender (rushing) or any.
func (s *scheduler) choose() (int, bool) {
	pend := s.c.pending
	var open []int
	for i, p := range pend {
		if !s.blocked(p) {
			open = append(open, i)
		}
	}
	if len(open) == 0 {
		return 0, false
	}
	switch s.rng.IntN(8) {
	case 0:
		return open[0], true
	case 1:
		return open[len(open)-1], true
	case 2:
		for _, i := range open {
			if !s.c.IsCorrect(pend[i].From) {
				return i, true
			}
		}
	}
	return open[s.rng.IntN(len(open))], true
}

// Run executes one seeded run of suite: a safety phase under the adversarial
// scheduler, then a liveness phase with fair random delivery, checking the
// suite's invariants after each.
func Run(suite *Suite, cfg Config) *Result {
	res := &Result{Seed: cfg.Seed, Byzantine: BehaviourNames(cfg.Byzantine)}
	g, err := core.NewGroup(cfg.N, cfg.F, suite.Resilience)
	if err != nil {
		res.Violations = append(res.Violations, err.Error())
		return res
	}
	c, err := NewCluster(suite, g, cfg.Seed, cfg.Byzantine, cfg.Trace)
	if err != nil {
		res.Violations = append(res.Violations, err.Error())
		return res
	}
	res.Cluster = c
	if cfg.SafetySteps == 0 {
		cfg.SafetySteps = 40 * cfg.N * cfg.N
	}
	if cfg.LivenessSteps == 0 {
		cfg.LivenessSteps = 400 * cfg.N * cfg.N
	}
	c.logf("run    %s n=%d f=%d seed=%d byz=%s", suite.Name, cfg.N, cfg.F, cfg.Seed, res.Byzantine)
	suite.Start(c)

	s := &scheduler{rng: rand.New(rand.NewPCG(cfg.Seed, 0x5c4ed)), c: c, held: map[core.NodeID]int{}}
	for i := 0; i < cfg.SafetySteps && c.failure == nil; i++ {
		c.fireDue()
		if !cfg.NoFaults {
			s.perturb()
		}
		if idx, ok := s.choose(); ok {
			// The adversary controls Byzantine links: it may drop their traffic.
			if p := c.pending[idx]; !c.IsCorrect(p.From) && s.rng.IntN(10) == 0 {
				c.Drop(idx)
			} else {
				c.Deliver(idx)
			}
		} else if len(c.pending) == 0 && !c.hasTimers() && len(c.Services) == 0 {
			break
		} else {
			c.Tick()
		}
	}
	res.Violations = append(res.Violations, check(c)...)

	// Liveness phase: faults healed, every pending packet eventually delivered.
	c.logf("heal   liveness phase")
	idle := 0
	for i := 0; i < cfg.LivenessSteps && c.failure == nil; i++ {
		c.fireDue()
		if len(c.pending) > 0 {
			c.Deliver(c.Rng.IntN(len(c.pending)))
			idle = 0
			continue
		}
		if suite.Terminated != nil && suite.Terminated(c) {
			break
		}
		if !c.hasTimers() && len(c.Services) == 0 {
			break
		}
		if idle++; idle > 10000 {
			break
		}
		c.Tick()
	}
	if suite.Terminated != nil && c.failure == nil && !suite.Terminated(c) {
		res.Violations = append(res.Violations, fmt.Sprintf("termination: correct replicas did not finish (%d packets pending)", len(c.pending)))
	}
	for _, v := range check(c) {
		if !slices.Contains(res.Violations, v) {
			res.Violations = append(res.Violations, v)
		}
	}
	res.Stats = c.Stats()
	res.Trace = c.Trace()
	if suite.Units != nil {
		res.Units = suite.Units(c)
	}
	return res
}

// check runs the generic invariants and the suite's.
func check(c *Cluster) []string {
	var v []string
	if c.failure != nil {
		v = append(v, "local invariant: "+c.failure.Error())
	}
	for _, a := range c.evidence {
		if c.IsCorrect(a.By) && c.IsCorrect(a.Accused) {
			v = append(v, fmt.Sprintf("false accusation: correct %d accused correct %d (%s: %s)", a.By, a.Accused, a.Kind, a.Detail))
			break
		}
	}
	if c.Suite.Check != nil {
		v = append(v, c.Suite.Check(c)...)
	}
	return v
}
