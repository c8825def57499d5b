package rbc_test

import (
	"testing"

	"github.com/maftia/maftia/sim/simtest"
)

// Golden interaction scripts: readable message traces of RBC under chosen
// schedules and faults (rewrite with -rewrite after an intended change).
func TestRBCInteractionScripts(t *testing.T) { simtest.RunBroadcastScripts(t, "rbc") }
