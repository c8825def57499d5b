package mvba_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/sim"
	"github.com/maftia/maftia/sim/simtest"
	"github.com/maftia/maftia/sim/suites"
)

// Golden interaction scripts: readable message traces of validated
// agreement (rewrite with -rewrite after an intended change). Scripts under
// testdata/optimistic run mvba.DefaultParams (first candidate and first ABA
// coins fixed); the others draw every candidate and coin by the threshold
// coin (suites.Options.AllCoins), so the coin path keeps its traces.
func TestMVBAInteractionScripts(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		opts := suites.Options{AllCoins: !strings.Contains(filepath.ToSlash(path), "/optimistic/")}
		s := &simtest.Script{
			Suite: func() *sim.Suite { return suites.MVBA(opts).Suite },
			Input: func(_ core.NodeID, v string) core.Input {
				return core.Input{Instance: suites.MVBAInstance, Value: []byte(v)}
			},
		}
		s.Run(t, path)
	})
}
