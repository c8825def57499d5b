package sim

import (
	"math/rand/v2"

	"github.com/maftia/maftia/core"
)

// Suite describes one protocol to the simulator: how to build a replica,
// how to start a run, how to render and mutate its messages, and which
// invariants must hold.
type Suite struct {
	Name       string
	Resilience core.Resilience

	// NewReplica builds the correct core of replica id.
	NewReplica func(id core.NodeID, g core.Group) (core.Protocol, error)
	// Recover rebuilds a replica from the records it persisted (optional).
	Recover func(id core.NodeID, g core.Group, records []core.Record) (core.Protocol, error)
	// Start gives the run its inputs (it may use c.Rng for choices).
	Start func(c *Cluster)
	// Describe renders a payload for traces (optional).
	Describe func(inst core.InstanceID, payload []byte) string
	// Mutate returns a syntactically valid but semantically wrong variant
	// of payload: another value, round±1, a swapped field (ATTACKS row 6).
	Mutate func(rng *rand.Rand, inst core.InstanceID, payload []byte) []byte
	// AltInput gives the second copy of a Twins replica a different input.
	AltInput func(rng *rand.Rand, in core.Input) core.Input
	// Services builds the run's local services, e.g. the TTCB model.
	Services func(g core.Group, seed uint64) map[string]Service

	// Setup, if set, runs once per cluster, before any replica is built,
	// with the run's group and seed: e.g. the trusted dealer generating the
	// run's threshold keys from a reader seeded by seed. The per-run state
	// it creates lives in the suite value, so one Suite value drives one
	// cluster at a time (Campaign.Run is sequential; build a fresh Suite per
	// goroutine).
	Setup func(g core.Group, seed uint64) error
	// Attacks are protocol-specific Byzantine behaviours (e.g. an AVID
	// sender committing to inconsistent fragments) that campaigns run
	// alongside AllBehaviours and `maftia sim` accepts by name.
	Attacks []Behaviour
	// State is opaque per-suite state (e.g. what the last run built), for
	// the suite's own tests and benchmarks.
	State any

	// Check returns safety violations; it is called after the safety phase
	// and again at the end.
	Check func(c *Cluster) []string
	// Units, if set, counts the application-level items a run delivered
	// (e.g. requests ordered by atomic broadcast, at one correct replica),
	// for throughput figures in summaries.
	Units func(c *Cluster) int
	// Terminated reports whether every correct replica has finished; it
	// must hold at the end of the liveness phase.
	Terminated func(c *Cluster) bool
}
