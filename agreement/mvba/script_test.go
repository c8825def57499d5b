package mvba_test

import (
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/sim"
	"github.com/maftia/maftia/sim/simtest"
	"github.com/maftia/maftia/sim/suites"
)

// Golden interaction scripts: readable message traces of validated
// agreement (rewrite with -rewrite after an intended change).
func TestMVBAInteractionScripts(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		s := &simtest.Script{
			Suite: func() *sim.Suite { return suites.MVBA(suites.Options{}).Suite },
			Input: func(_ core.NodeID, v string) core.Input {
				return core.Input{Instance: suites.MVBAInstance, Value: []byte(v)}
			},
		}
		s.Run(t, path)
	})
}
