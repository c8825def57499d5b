package ttcb

import (
	"os"
	"testing"
	"time"
)

func TestIdleClusterTimeliness(t *testing.T) {
	if os.Getenv("TTCB_IDLE") == "" {
		t.Skip()
	}
	c := newCluster(t, 3, 1, 50*time.Millisecond, []uint32{1, 2, 3})
	c.waitJoined(1, 2, 3)
	time.Sleep(10 * time.Second)
	t.Logf("restarts in 10 s idle: %d", c.restarts.Load())
}
