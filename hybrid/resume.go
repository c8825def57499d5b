package hybrid

import (
	"encoding/binary"
	"fmt"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/ttcb"
	"github.com/maftia/maftia/wire"
)

// ResumeKey is the key of the record (under the engine's root instance)
// in which the engine persists where it resumes after a restart.
const ResumeKey = "resume"

const recoverTimer = "recover"

// Resume is the engine's durable state: the next epoch, its tstart, the
// count of consecutive weak epochs and the last batch sequence number.
// It is written with every completed epoch, in the same step (and so the
// same atomic commit) as that epoch's batch.
type Resume struct {
	Epoch, TStart uint64
	Weak          uint
	Seq           uint64
}

func (r Resume) encode() []byte {
	b := make([]byte, 0, 32)
	for _, v := range []uint64{r.Epoch, r.TStart, uint64(r.Weak), r.Seq} {
		b = binary.BigEndian.AppendUint64(b, v)
	}
	return b
}

func decodeResume(b []byte) (Resume, error) {
	if len(b) != 32 {
		return Resume{}, fmt.Errorf("hybrid: %w: resume record of %d bytes", wire.ErrMalformed, len(b))
	}
	u := func(i int) uint64 { return binary.BigEndian.Uint64(b[8*i:]) }
	r := Resume{Epoch: u(0), TStart: u(1), Weak: uint(u(2)), Seq: u(3)}
	if r.Weak > 30 {
		return Resume{}, fmt.Errorf("hybrid: %w: resume record with weak=%d", wire.ErrMalformed, r.Weak)
	}
	return r, nil
}

// Recover restores the engine's durable state from the records it
// persisted (under its root instance) before a restart. It must be called
// before the first event. The engine then resumes at the persisted epoch
// without proposing a batch of its own there (it may have proposed a
// different one before it crashed, and the TTCB would keep that one): it
// waits until TTCB time is past that epoch's tstart, joins its
// executions late, fetches the decided batches from replicas that hold
// them and goes on with the schedule. Batches at or below Seq are not
// delivered again. A replica can resume this way while the TTCB still
// holds the results (Params.Retention) and the others still keep the
// batches (Params.Retain epochs); further behind it needs state transfer.
// A damaged record refuses the start (ATTACKS row 14).
func (e *Engine) Recover(recs []core.Record) error {
	if e.cur != nil {
		return fmt.Errorf("hybrid: Recover after the engine started")
	}
	for _, rec := range recs {
		if rec.Instance != e.root || rec.Key != ResumeKey {
			continue
		}
		r, err := decodeResume(rec.Value)
		if err != nil {
			return err
		}
		e.resume = &r
	}
	return nil
}

// begin starts the first epoch: epoch 0 of the schedule, or the resume
// point of a restarted replica.
func (e *Engine) begin(out *core.Output) {
	r := e.resume
	if r == nil {
		// Durable before epoch 0's PROPOSE is sent: a replica that
		// restarts after this step knows it may have proposed.
		out.PersistRecord(e.root, ResumeKey, Resume{TStart: e.p.Start}.encode())
		e.start(0, e.p.Start, out)
		return
	}
	e.resume = nil
	e.weak, e.seq = r.Weak, r.Seq
	n := e.p.Group.N()
	e.cur = &epoch{num: r.Epoch, tstart: r.TStart, batches: make([][][]byte, n), has: make([]bool, n),
		hashes: make([]ttcb.Value, n), proposed: make([]bool, n), results: make([]*ttcb.TBAResult, n),
		fetched: make([]bool, n), recovering: true}
	e.ops.Epochs++
	e.askTime(out)
}

// askTime asks the TTCB for its time on behalf of the recovering epoch.
func (e *Engine) askTime(out *core.Output) {
	out.Request(e.root, ttcb.ServiceName, e.tag(e.cur.num, 0)|tagTime, ttcb.GetTimestamp{})
}

// Progress describes the epoch in progress (for /status and logs): its
// number and tstart, the executions whose result is known, relayed or
// asked for, and the decided batches still missing.
func (e *Engine) Progress() string {
	c := e.cur
	if c == nil {
		return "not started"
	}
	s := fmt.Sprintf("epoch %d tstart %d weak %d seq %d recovering=%v late=%v results %d/%d:", c.num, c.tstart, e.weak, e.seq, c.recovering, c.lateJoined, c.nresults, e.p.Group.N())
	for i, r := range c.results {
		switch {
		case r == nil && c.asked != nil && c.asked[i]:
			s += fmt.Sprintf(" %d:asked-others", i+1)
		case r == nil && c.proposed[i]:
			s += fmt.Sprintf(" %d:waiting", i+1)
		case r == nil:
			s += fmt.Sprintf(" %d:not-proposed", i+1)
		case !r.Decided:
			s += fmt.Sprintf(" %d:undecided", i+1)
		case c.has[i] && c.hashes[i] == r.Value:
			s += fmt.Sprintf(" %d:have", i+1)
		default:
			s += fmt.Sprintf(" %d:fetching", i+1)
		}
	}
	return s
}

// ResumeToken implements smr.Resumer: the resume point right after batch
// seq, which this engine delivered in the current step (the next epoch
// has started). It depends only on agreed results, so every correct
// replica returns the same bytes.
func (e *Engine) ResumeToken(seq uint64) ([]byte, error) {
	if e.cur == nil || seq != e.seq {
		return nil, fmt.Errorf("hybrid: resume token for batch %d, last delivered %d", seq, e.seq)
	}
	return Resume{Epoch: e.cur.num, TStart: e.cur.tstart, Weak: e.weak, Seq: e.seq}.encode(), nil
}

// Resume implements smr.Resumer: continue right after batch seq, at the
// epoch of a certified checkpoint's token (state transfer). The engine
// joins that epoch as a restarted replica does (it proposes nothing of
// its own there) at its next event. A token behind the engine is ignored.
func (e *Engine) Resume(seq uint64, token []byte) error {
	r, err := decodeResume(token)
	if err != nil {
		return err
	}
	if r.Seq != seq {
		return fmt.Errorf("hybrid: resume token for batch %d given for %d", r.Seq, seq)
	}
	if (e.cur != nil && r.Epoch <= e.cur.num) || seq <= e.seq {
		return nil
	}
	e.cur, e.resume = nil, &r
	e.future = map[uint64]map[core.NodeID][][]byte{}
	return nil
}
