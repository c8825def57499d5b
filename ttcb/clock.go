package ttcb

import (
	"sync/atomic"
	"time"
)

// clock is a module's view of global time: its local clock (wall time at
// start plus the monotonic clock since) plus an offset learnt from the
// reference module by round-trip clock reading (Cristian's method over the
// control network). errBound is half the round trip of the sample in use:
// the module's global time is within errBound (+ drift since) of the
// reference's, so two modules are within ε_i + ε_j of each other.
type clock struct {
	start    time.Time
	base     int64
	skew     atomic.Int64 // fault injection (tests, ATTACKS row 13)
	offset   atomic.Int64
	errBound atomic.Int64
	last     atomic.Uint64
}

func newClock(skew time.Duration) *clock {
	c := &clock{start: time.Now()}
	c.base = c.start.UnixNano()
	c.skew.Store(int64(skew))
	return c
}

func (c *clock) local() int64 { return c.base + int64(time.Since(c.start)) + c.skew.Load() }

func (c *clock) global() uint64 {
	g := c.local() + c.offset.Load()
	if g < 0 {
		return 0
	}
	return uint64(g)
}

// timestamp returns global time, strictly increasing across calls even
// when the offset is corrected backwards.
func (c *clock) timestamp() uint64 {
	for range 1000 {
		g, l := c.global(), c.last.Load()
		if g <= l {
			g = l + 1
		}
		if c.last.CompareAndSwap(l, g) {
			return g
		}
	}
	return c.last.Add(1)
}
