package avid_test

import (
	"testing"

	"github.com/maftia/maftia/sim/simtest"
)

// Golden interaction scripts: readable message traces of AVID under chosen
// schedules and faults (rewrite with -rewrite after an intended change).
func TestAVIDInteractionScripts(t *testing.T) { simtest.RunBroadcastScripts(t, "avid") }
