package hybrid_test

import (
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/sim"
	"github.com/maftia/maftia/sim/simtest"
	"github.com/maftia/maftia/sim/suites"
)

// Golden interaction scripts of BRM-T: payload messages, TTCB replies
// (svc lines) and deliveries under chosen schedules and faults (rewrite
// with -rewrite after an intended change). tstart is 60 ticks, T_TBA 10.
func TestRMulticastInteractionScripts(t *testing.T) {
	datadriven.Walk(t, "testdata/rmcast", func(t *testing.T, path string) {
		s := &simtest.Script{
			Suite: func() *sim.Suite { su, _ := suites.Get("hybrid-rmcast", suites.Options{}); return su },
			Input: func(id core.NodeID, v string) core.Input {
				return core.Input{Instance: core.RootN("brm", uint64(id)), Value: []byte(v)}
			},
		}
		s.Run(t, path)
	})
}
