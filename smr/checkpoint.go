package smr

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/crypto/sig"
	"github.com/maftia/maftia/crypto/tsig"
	"github.com/maftia/maftia/wire"
)

// Checkpoint certificates (issue 7, item 6; Castro–Liskov's stable
// checkpoints with a threshold signature instead of 2f+1 signed messages):
// every CheckpointEvery batches each replica signs (seq, StateDigest())
// with its share of the cluster's Quorum key (threshold n−f) and sends the
// share to all. n−f matching shares combine into one signature that any
// replica or client can check against the cluster file: at least f+1
// correct replicas reached that state at that position. Such a certificate
// is what a lagging replica verifies a transferred state against
// (xfer.go), and what lets the runtime truncate its log below it.
//
// The certified state of a checkpoint is CheckpointState(token, snapshot):
// the ordering engine's resume token (Resumer; empty for engines without
// one) followed by Replica.Snapshot(). Its digest is CheckpointDigest: a
// hash over the hashes of its SnapshotChunk-sized chunks, so that a
// replica fetching it can check every chunk as it arrives.

// CheckpointDomain separates checkpoint signatures from all others.
const CheckpointDomain = "maftia/smr/checkpoint/v1"

// CheckpointInstance carries CHECKPOINT messages: seq (8 bytes), state
// digest (32 bytes), the sender's Quorum-key share.
var CheckpointInstance = core.Root("ckpt")

// SnapshotChunk is the chunk size of checkpoint states: fixed, since the
// chunking is part of the certified digest.
const SnapshotChunk = 256 << 10

// Domains of the checkpoint state digest.
const (
	stateDomain = "maftia/smr/state/v1"
	chunkDomain = "maftia/smr/chunk/v1"
)

// CheckpointState is the certified state of a checkpoint: the engine's
// resume token (length-prefixed) followed by the replica's snapshot.
func CheckpointState(token, snapshot []byte) []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(token)+len(snapshot)), uint64(len(token)))
	return append(append(b, token...), snapshot...)
}

// splitState is the inverse of CheckpointState.
func splitState(state []byte) (token, snapshot []byte, err error) {
	if len(state) < 8 {
		return nil, nil, fmt.Errorf("%w: checkpoint state of %d bytes", wire.ErrMalformed, len(state))
	}
	n := binary.BigEndian.Uint64(state)
	if n > uint64(len(state)-8) {
		return nil, nil, fmt.Errorf("%w: checkpoint state: token of %d bytes", wire.ErrMalformed, n)
	}
	return state[8 : 8+n], state[8+n:], nil
}

// chunkCount is the number of SnapshotChunk-sized chunks of size bytes.
func chunkCount(size uint64) uint64 { return (size + SnapshotChunk - 1) / SnapshotChunk }

// chunkHash is the hash of chunk i of a checkpoint state.
func chunkHash(i uint64, data []byte) [32]byte {
	return sig.Digest(chunkDomain, u64(i), data)
}

// chunkHashes hashes every chunk of state.
func chunkHashes(state []byte) [][32]byte {
	hs := make([][32]byte, chunkCount(uint64(len(state))))
	for i := range hs {
		hs[i] = chunkHash(uint64(i), state[i*SnapshotChunk:min(len(state), (i+1)*SnapshotChunk)])
	}
	return hs
}

// digestOfHashes is the state digest given its size and chunk hashes.
func digestOfHashes(size uint64, hs [][32]byte) [32]byte {
	fields := make([][]byte, 0, 2+len(hs))
	fields = append(fields, u64(size), u64(uint64(len(hs))))
	for i := range hs {
		fields = append(fields, hs[i][:])
	}
	return sig.Digest(stateDomain, fields...)
}

// CheckpointDigest is the digest of a checkpoint state: what checkpoint
// certificates sign.
func CheckpointDigest(state []byte) [32]byte {
	return digestOfHashes(uint64(len(state)), chunkHashes(state))
}

// Checkpoint is a certified state: Signature is the Quorum key's threshold
// signature on CheckpointMessage(Seq, Digest).
type Checkpoint struct {
	Seq       uint64
	Digest    [32]byte
	Signature []byte
}

// CheckpointMessage is the signed byte string of a checkpoint.
func CheckpointMessage(seq uint64, digest [32]byte) []byte {
	return sig.Encode(CheckpointDomain, u64(seq), digest[:])
}

// VerifyCheckpoint checks a certificate against the cluster's Quorum key.
func VerifyCheckpoint(quorum *tsig.PublicKey, cp Checkpoint) error {
	if quorum.Threshold() < 1 {
		return errors.New("smr: no quorum key")
	}
	s, err := tsig.UnmarshalSignature(cp.Signature)
	if err != nil {
		return fmt.Errorf("smr: checkpoint %d: %w", cp.Seq, err)
	}
	return tsig.Verify(quorum, s, CheckpointMessage(cp.Seq, cp.Digest))
}

// checkpoints is a replica's checkpoint state (nil when disabled).
type checkpoints struct {
	every  uint64
	pk     *tsig.PublicKey
	key    *tsig.SecretShare
	mine   map[uint64][32]byte                  // own digests not yet certified
	snaps  map[uint64][]byte                    // own snapshots not yet certified
	shares map[uint64]map[[32]byte][]tsig.Share // seq → digest → shares
	from   map[uint64]map[core.NodeID]bool      // seq → who sent a share
	stable Checkpoint                           // latest certified
	// stableSnap is stable's state if this replica took it (or fetched
	// it), stableHashes its chunk hashes (computed when first served);
	// taken is the last certified checkpoint handed to the runtime.
	stableSnap   []byte
	stableHashes [][32]byte
	taken        uint64
	x            xfer // state transfer (xfer.go)
}

// StableCheckpoint is the latest certified checkpoint (Seq 0: none yet).
func (r *Replica) StableCheckpoint() Checkpoint { return r.cp.stableOrZero() }

func (c *checkpoints) stableOrZero() Checkpoint {
	if c == nil {
		return Checkpoint{}
	}
	return c.stable
}

// afterBatch signs and sends this replica's checkpoint share when seq is
// a checkpoint position.
func (r *Replica) afterBatch(seq uint64, out *core.Output) error {
	c := r.cp
	if c == nil || seq%c.every != 0 {
		return nil
	}
	app, err := r.Snapshot()
	if err != nil {
		return err
	}
	var token []byte
	if res, ok := r.engine.(Resumer); ok {
		if token, err = res.ResumeToken(seq); err != nil {
			return fmt.Errorf("smr: engine resume token at batch %d: %w", seq, err)
		}
	}
	snap := CheckpointState(token, app)
	d := CheckpointDigest(snap)
	c.mine[seq], c.snaps[seq] = d, snap
	for s := range c.mine { // bounded: at most 4 uncertified snapshots
		if s+4*c.every <= seq {
			delete(c.mine, s)
			delete(c.snaps, s)
		}
	}
	share := tsig.SignShare(c.key, CheckpointMessage(seq, d))
	b := binary.BigEndian.AppendUint64(nil, seq)
	b = append(append(b, d[:]...), share.Marshal()...)
	out.Broadcast(CheckpointInstance, b)
	return nil
}

// onCheckpoint: upon CHECKPOINT(seq, d, share) from k — keep one share per
// sender and position (positions within 4 checkpoints of our own, so a
// Byzantine sender cannot make us hold unbounded state); with n−f shares
// on the same d, combine them into a certificate.
func (r *Replica) onCheckpoint(m core.Message, out *core.Output) error {
	c := r.cp
	if c == nil {
		return nil
	}
	if len(m.Payload) < 40 {
		out.Accuse(m.From, core.Malformed, m.Instance, "short CHECKPOINT")
		return nil
	}
	seq := binary.BigEndian.Uint64(m.Payload)
	var d [32]byte
	copy(d[:], m.Payload[8:40])
	if seq == 0 || seq%c.every != 0 {
		out.Accuse(m.From, core.Malformed, m.Instance, "CHECKPOINT at %d, not a checkpoint position", seq)
		return nil
	}
	if seq >= r.position+r.lag() {
		r.lagging(m.From, seq, out) // state transfer may help (xfer.go)
	}
	if seq <= c.stable.Seq || seq > r.position+4*c.every || c.from[seq][m.From] {
		return nil
	}
	share, err := tsig.UnmarshalShare(m.Payload[40:])
	if err != nil || share.Index != uint32(m.From) {
		out.Accuse(m.From, core.InvalidProof, m.Instance, "malformed CHECKPOINT share")
		return nil
	}
	if c.from[seq] == nil {
		c.from[seq], c.shares[seq] = map[core.NodeID]bool{}, map[[32]byte][]tsig.Share{}
	}
	c.from[seq][m.From] = true
	c.shares[seq][d] = append(c.shares[seq][d], share)
	q := r.p.Group.Quorum()
	if len(c.shares[seq][d]) < q {
		return nil
	}
	msg := CheckpointMessage(seq, d)
	sigma, bad, err := tsig.Combine(c.pk, c.shares[seq][d], msg)
	if err != nil && !errors.Is(err, tsig.ErrTooFewShares) {
		bad = bad[:0] // structural defect: find the culprits one by one
		for _, s := range c.shares[seq][d] {
			if tsig.VerifyShare(c.pk, s, msg) != nil {
				bad = append(bad, s.Index)
			}
		}
	}
	if err != nil {
		kept := c.shares[seq][d][:0]
		for _, s := range c.shares[seq][d] {
			if containsIndex(bad, s.Index) {
				out.Accuse(core.NodeID(s.Index), core.InvalidProof, m.Instance, "invalid CHECKPOINT share at %d", seq)
				continue
			}
			kept = append(kept, s)
		}
		c.shares[seq][d] = kept
		return nil
	}
	if mine, ok := c.mine[seq]; ok && mine != d {
		// n−f replicas, so at least f+1 correct ones, certify another
		// state at this position: this replica's state diverged.
		return fmt.Errorf("smr: local state at batch %d has digest %x, the certified checkpoint %x", seq, mine[:8], d[:8])
	}
	c.stable = Checkpoint{Seq: seq, Digest: d, Signature: sigma.Marshal()}
	c.stableSnap, c.stableHashes = c.snaps[seq], nil // nil if this replica has not executed seq yet
	rec := binary.BigEndian.AppendUint64(nil, seq)
	rec = append(append(rec, d[:]...), c.stable.Signature...)
	out.PersistRecord(CheckpointInstance, LogKey(seq), rec)
	for s := range c.from {
		if s <= seq {
			delete(c.from, s)
			delete(c.shares, s)
		}
	}
	for s := range c.mine {
		if s <= seq {
			delete(c.mine, s)
			delete(c.snaps, s)
		}
	}
	return nil
}

// TakeCertified returns, once, the latest certified checkpoint with the
// snapshot this replica took at that position, for the runtime to store
// durably (storage.SaveCheckpoint) before it truncates the log below it.
// ok is false if there is none new (or this replica did not take the
// snapshot itself: it only learned the certificate).
func (r *Replica) TakeCertified() (cp Checkpoint, snapshot []byte, ok bool) {
	c := r.cp
	if c == nil || c.stable.Seq == c.taken || c.stableSnap == nil {
		return Checkpoint{}, nil, false
	}
	c.taken = c.stable.Seq
	return c.stable, c.stableSnap, true
}

// RestoreCheckpoint starts a replica from a certified checkpoint state
// (CheckpointState; its own, at restart, or one a state transfer
// persisted): the certificate must verify against the Quorum key and the
// state must have the certified digest. The engine, if it is a Resumer,
// resumes right after the checkpoint.
func (r *Replica) RestoreCheckpoint(cp Checkpoint, state []byte) error {
	if err := r.install(cp, state, true); err != nil {
		return err
	}
	r.cp.taken = cp.Seq
	return nil
}

// install verifies and installs a certified checkpoint state.
func (r *Replica) install(cp Checkpoint, state []byte, verify bool) error {
	c := r.cp
	if c == nil {
		return errors.New("smr: checkpoints are disabled")
	}
	if verify {
		if err := VerifyCheckpoint(c.pk, cp); err != nil {
			return fmt.Errorf("smr: checkpoint %d: certificate: %w", cp.Seq, err)
		}
		if CheckpointDigest(state) != cp.Digest {
			return fmt.Errorf("smr: %w: checkpoint %d: state does not match the certified digest", wire.ErrMalformed, cp.Seq)
		}
	}
	token, snapshot, err := splitState(state)
	if err != nil {
		return err
	}
	if err := r.Restore(snapshot); err != nil {
		return err
	}
	if r.position != cp.Seq {
		return fmt.Errorf("smr: %w: checkpoint %d holds a snapshot at batch %d", wire.ErrMalformed, cp.Seq, r.position)
	}
	if res, ok := r.engine.(Resumer); ok {
		if err := res.Resume(cp.Seq, token); err != nil {
			return fmt.Errorf("smr: engine resume at checkpoint %d: %w", cp.Seq, err)
		}
	}
	c.stable, c.stableSnap, c.stableHashes = cp, state, nil
	for s := range c.from {
		if s <= cp.Seq {
			delete(c.from, s)
			delete(c.shares, s)
		}
	}
	for s := range c.mine {
		if s <= cp.Seq {
			delete(c.mine, s)
			delete(c.snaps, s)
		}
	}
	return nil
}

func containsIndex(xs []uint32, x uint32) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}
