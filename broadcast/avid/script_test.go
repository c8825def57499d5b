package avid_test

import (
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/sim"
	"github.com/maftia/maftia/sim/simtest"
	"github.com/maftia/maftia/sim/suites"
)

// Golden interaction scripts: readable message traces of AVID under chosen
// schedules and faults (rewrite with -rewrite after an intended change).
func TestAVIDInteractionScripts(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		s := &simtest.Script{
			Suite: func() *sim.Suite { su, _ := suites.Get("avid", suites.Options{}); return su },
			Input: func(id core.NodeID, v string) core.Input {
				return core.Input{Instance: core.RootN("avid", uint64(id)), Value: []byte(v)}
			},
		}
		s.Run(t, path)
	})
}
