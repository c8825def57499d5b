package abc

import (
	"encoding/binary"
	"fmt"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/wire"
)

// Restart without amnesia (docs/adr/0008).
//
// A replica that crashes and restarts has lost what it received in the
// epochs then in flight, and with it what it said there: rejoining them
// with fresh state, it could send an ABA vote, an AVID echo or a STORED
// share that contradicts one it sent before the crash — to the others,
// equivocation (ATTACKS.md rows 1 and 5). Instead of rebuilding those
// epochs, abc keeps one durable high-water mark: before it first creates
// state for an epoch e at or above the mark, it raises the mark to
// e+Window in the same Output, whose records the runtime makes durable
// before any of its sends. Every epoch the replica ever spoke in is
// therefore below its durable mark. After a restart (Recover) every epoch
// below the recovered mark is sat out: its messages are not processed and
// no batch is proposed in it; they count as marks of how far their senders
// are, so that the epoch's output is fetched (f+1 matching answers) once
// f+1 replicas are seen there. For those epochs the restarted replica is
// crashed rather than Byzantine; it takes part again from the first epoch
// at or above the mark, where it has said nothing.

// markKey is the record of the mark, under the root instance.
const markKey = "mark"

// raiseMark makes the mark cover epoch num before any state for it exists
// (one record every Window epochs or so).
func (a *ABC) raiseMark(num uint64, out *core.Output) {
	if num < a.mark {
		return
	}
	a.mark = num + a.p.Window
	out.PersistRecord(a.root, markKey, u64(a.mark))
}

// Mark is the durable high-water mark: no epoch at or above it has been
// spoken in. Mute is the mark recovered at the last restart: epochs below
// it are sat out.
func (a *ABC) Mark() (mark, mute uint64) { return a.mark, a.mute }

// Recover restores the mark from the records this replica persisted under
// its root instance (records of other instances, such as sub-protocol
// records an older version persisted, are ignored). It must be called on a
// fresh instance, before its first Step. A malformed mark is a damaged
// store (ATTACKS.md row 14): the replica must not start, since it could
// not know which epochs to sit out.
func (a *ABC) Recover(recs []core.Record) error {
	if len(a.epochs) > 0 || a.mark > 0 {
		return fmt.Errorf("abc: Recover on a replica that has already run")
	}
	for _, r := range recs {
		if r.Instance != a.root || r.Key != markKey {
			continue
		}
		if len(r.Value) != 8 {
			return fmt.Errorf("abc: %w: mark record of %d bytes", wire.ErrMalformed, len(r.Value))
		}
		m := binary.BigEndian.Uint64(r.Value)
		a.mark, a.mute = max(a.mark, m), max(a.mute, m)
	}
	return nil
}
