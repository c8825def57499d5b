// Package suites registers each maftia protocol with the simulator: how to
// build its replicas, start a run, mutate its messages and check its
// properties. Tests, benchmarks and `maftia sim <protocol>` share them.
package suites

import (
	"fmt"
	"sort"

	"github.com/maftia/maftia/sim"
)

// Options tune a suite for one campaign.
type Options struct {
	// Broken selects a deliberately broken variant (for tests that show a
	// checker has teeth); "" is the correct protocol.
	Broken string
	// PayloadSize is the size of broadcast payloads (0: small strings).
	PayloadSize int
	// InlineChecks runs every replica without the Precheck host (by
	// default odd replicas verify in Precheck, even ones inline in Step),
	// so benchmarks find all cryptographic work counted inside the cores.
	InlineChecks bool
	// TTCBAttest (hybrid-smr): the TTCB model signs its results and the
	// engines know the module keys (result relay by one attestation).
	TTCBAttest bool
	// ABAFixedCoins (aba): the fixed coins of the first rounds
	// (aba.Params.FixedCoins); nil: a threshold coin in every round.
	ABAFixedCoins []bool
	// AllCoins (mvba): draw every candidate and every ABA coin by the
	// threshold coin — the protocol without mvba.DefaultParams' optimistic
	// randomness (FixedFirstCandidate, ABAFixedCoins).
	AllCoins bool
}

var registry = map[string]func(Options) *sim.Suite{}

func register(name string, f func(Options) *sim.Suite) { registry[name] = f }

// Get returns the named suite.
func Get(name string, o Options) (*sim.Suite, error) {
	f, ok := registry[name]
	if !ok {
		return nil, fmt.Errorf("suites: unknown protocol %q (have %v)", name, Names())
	}
	return f(o), nil
}

// Names lists the registered suites.
func Names() []string {
	var n []string
	for k := range registry {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}
