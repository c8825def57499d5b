package abc

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/maftia/maftia/wire"
)

// Resuming after a state transfer (smr.Resumer; docs/adr/0005).
//
// The output of an epoch depends on more than the epoch's decision: a
// request delivered in the last Dedup epochs is dropped again. A replica
// that skips ahead to just after batch seq must therefore know, besides the
// epoch E that emitted seq, the digests delivered in epochs E−Dedup+1 … E,
// or it could deliver a replayed request that every other correct replica
// drops and so number the following batches differently. The resume token
// holds exactly that; it is a deterministic function of the agreed epoch
// outputs, so every correct replica computes the same token for the same
// batch, and smr certifies it inside the checkpoint's state.

// forgetEmitted runs at the start of every Step: the epochs of batches
// emitted by earlier Steps are no longer asked for, and per-epoch digests
// that no batch emitted from now on can need are dropped (every later
// batch comes from an epoch at or after floor).
func (a *ABC) forgetEmitted() {
	clear(a.emitted)
	floor := a.nextDeliver
	if a.causal != nil && len(a.causal.queue) > 0 {
		floor = min(floor, a.causal.queue[0].epoch)
	}
	for x := range a.recent {
		if x+a.p.Dedup <= floor {
			delete(a.recent, x)
		}
	}
}

// ResumeToken returns the state a replica needs to continue right after
// batch seq, which this replica emitted during the current Step: the
// epoch E of the batch, then for each epoch E−Dedup+1 … E that delivered
// requests, the epoch and its request digests in delivery order.
func (a *ABC) ResumeToken(seq uint64) ([]byte, error) {
	e, ok := a.emitted[seq]
	if !ok {
		return nil, fmt.Errorf("abc: no resume token for batch %d (not emitted in this step)", seq)
	}
	var epochs []uint64
	for x := range a.recent {
		if x <= e && x+a.p.Dedup > e {
			epochs = append(epochs, x)
		}
	}
	slices.Sort(epochs)
	b := binary.BigEndian.AppendUint64(nil, e)
	b = binary.BigEndian.AppendUint64(b, uint64(len(epochs)))
	for _, x := range epochs {
		b = binary.BigEndian.AppendUint64(b, x)
		b = binary.BigEndian.AppendUint64(b, uint64(len(a.recent[x])))
		for _, d := range a.recent[x] {
			b = append(b, d[:]...)
		}
	}
	return b, nil
}

// decodeToken parses a resume token strictly: epochs ascending within the
// Dedup window before e, no allocation beyond what the bytes hold.
func decodeToken(b []byte, dedup uint64) (e uint64, recent map[uint64][]Digest, err error) {
	bad := func(what string) error { return fmt.Errorf("%w: abc: resume token: %s", wire.ErrMalformed, what) }
	u := func() (uint64, bool) {
		if len(b) < 8 {
			return 0, false
		}
		v := binary.BigEndian.Uint64(b)
		b = b[8:]
		return v, true
	}
	e, ok := u()
	n, ok2 := u()
	if !ok || !ok2 || e == ^uint64(0) || n > dedup || n > uint64(len(b))/16 {
		return 0, nil, bad("header")
	}
	recent = make(map[uint64][]Digest, n)
	prev := uint64(0)
	for i := uint64(0); i < n; i++ {
		x, ok := u()
		k, ok2 := u()
		if !ok || !ok2 || x > e || x+dedup <= e || (i > 0 && x <= prev) || k == 0 || k > uint64(len(b))/32 {
			return 0, nil, bad("epoch entry")
		}
		prev = x
		ds := make([]Digest, k)
		for j := range ds {
			copy(ds[j][:], b[:32])
			b = b[32:]
		}
		recent[x] = ds
	}
	if len(b) != 0 {
		return 0, nil, bad("trailing bytes")
	}
	return e, recent, nil
}

// Resume makes the replica continue right after batch seq, whose resume
// token (ResumeToken at a replica that emitted it) is token: the next
// batch it emits is seq+1, from epoch E+1 on. State for epochs up to E is
// dropped; the epochs after it are completed by the protocol or by FETCH.
// The token must come from a certified checkpoint; Resume refuses to go
// backwards.
func (a *ABC) Resume(seq uint64, token []byte) error {
	e, recent, err := decodeToken(token, a.p.Dedup)
	if err != nil {
		return err
	}
	if seq < a.seq || (seq == a.seq && e+1 != a.nextDeliver) {
		return fmt.Errorf("abc: resume at batch %d (epoch %d) would go back from batch %d (epoch %d)", seq, e, a.seq, a.nextDeliver)
	}
	a.seq, a.nextDeliver = seq, e+1
	a.recent = recent
	a.delivered = map[Digest]uint64{}
	for x, ds := range recent {
		for _, d := range ds {
			a.delivered[d] = x
		}
	}
	clear(a.emitted)
	for num := range a.epochs {
		if num <= e {
			delete(a.epochs, num)
		}
	}
	clear(a.outputs)
	for x := range a.fetchSent {
		if x <= e {
			delete(a.fetchSent, x)
		}
	}
	for x := range a.fetchVotes {
		if x <= e {
			delete(a.fetchVotes, x)
			delete(a.fetchBodies, x)
		}
	}
	for who, want := range a.fetchWants {
		if want <= e {
			delete(a.fetchWants, who)
		}
	}
	a.prunePending(e)
	if c := a.causal; c != nil {
		// Epochs ordered but not yet decrypted are ordered again (their
		// batches come after seq).
		c.queue = nil
		for x := range c.early {
			if x <= e {
				delete(c.early, x)
			}
		}
	}
	return nil
}
