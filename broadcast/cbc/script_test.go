package cbc_test

import (
	"testing"

	"github.com/maftia/maftia/sim/simtest"
)

// Golden interaction scripts: readable message traces of CBC under chosen
// schedules and faults (rewrite with -rewrite after an intended change).
func TestCBCInteractionScripts(t *testing.T) { simtest.RunBroadcastScripts(t, "cbc") }
