package hybrid_test

import (
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/sim"
	"github.com/maftia/maftia/sim/simtest"
	"github.com/maftia/maftia/sim/suites"
)

// Golden interaction scripts: payload messages, TTCB replies (svc lines,
// with the request tag) and deliveries under chosen schedules and faults
// (rewrite with -rewrite after an intended change). T_TBA is 10 ticks;
// BRM-T's tstart is 60, the engine's epoch 0 starts at 40.
func TestInteractionScripts(t *testing.T) {
	for _, tc := range []struct {
		dir, suite string
		input      func(id core.NodeID, v string) core.Input
	}{
		{"testdata/rmcast", "hybrid-rmcast", func(id core.NodeID, v string) core.Input {
			return core.Input{Instance: core.RootN("brm", uint64(id)), Value: []byte(v)}
		}},
		{"testdata/engine", "hybrid-smr", func(_ core.NodeID, v string) core.Input {
			return core.Input{Instance: core.Root("order"), Value: []byte(v)}
		}},
	} {
		datadriven.Walk(t, tc.dir, func(t *testing.T, path string) {
			s := &simtest.Script{
				Suite: func() *sim.Suite { su, _ := suites.Get(tc.suite, suites.Options{}); return su },
				Input: tc.input,
			}
			s.Run(t, path)
		})
	}
}
