package aba_test

import (
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/sim"
	"github.com/maftia/maftia/sim/simtest"
	"github.com/maftia/maftia/sim/suites"
)

// Golden interaction scripts: readable message traces of binary agreement
// under chosen schedules and faults (rewrite with -rewrite after an
// intended change). Coin keys are dealt from the script's seed.
func TestABAInteractionScripts(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		s := &simtest.Script{
			Suite: func() *sim.Suite { return suites.ABA(suites.Options{}).Suite },
			Input: func(_ core.NodeID, v string) core.Input {
				return core.Input{Instance: suites.ABAInstance, Value: v == "1"}
			},
		}
		s.Run(t, path)
	})
}
