package cbc_test

import (
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/sim"
	"github.com/maftia/maftia/sim/simtest"
	"github.com/maftia/maftia/sim/suites"
)

// Golden interaction scripts: readable message traces of CBC under chosen
// schedules and faults (rewrite with -rewrite after an intended change).
// Keys come from the trusted dealer seeded by the script's seed, so the
// shares and certificates in the traces are reproducible.
func TestCBCInteractionScripts(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		s := &simtest.Script{
			Suite: func() *sim.Suite { su, _ := suites.Get("cbc", suites.Options{}); return su },
			Input: func(id core.NodeID, v string) core.Input {
				return core.Input{Instance: core.RootN("cbc", uint64(id)), Value: []byte(v)}
			},
		}
		s.Run(t, path)
	})
}
