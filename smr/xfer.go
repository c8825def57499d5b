package smr

import (
	"encoding/binary"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/wire"
)

// State transfer (issue 7; Castro–Liskov's state transfer, with the
// checkpoint certificate as the only thing trusted). A replica that lags a
// certified checkpoint by TransferLag batches or more — it restarted with
// an empty or old disk, or it was cut off while the others moved on and
// discarded what the engine's own catch-up would need — fetches the
// checkpoint's state from the replicas that hold it:
//
//	upon CHECKPOINT share for seq ≥ position + lag from k (or a local
//	  probe input): send PROBE to k (to all)
//	upon PROBE from k: if I hold my stable checkpoint's state, send
//	  STATUS(seq, digest, certificate, size, chunk hashes) to k (a few
//	  times per stable checkpoint at most)
//	upon STATUS from k, solicited, seq ≥ position + lag: check that the
//	  hashes give digest and the certificate verifies (else accuse k);
//	  make seq the download target (the highest verified), k a source
//	keep ≤ 2 FETCH(seq, i) outstanding per source, for chunks not yet
//	  requested; once all are, re-request missing chunks from other
//	  sources (so silent sources only slow the download down)
//	upon FETCH for a checkpoint other than my stable one: answer with my
//	  STATUS (the requester drops me as a source, and may move on)
//	upon CHUNK(seq, i, data) from a source asked for it: if the hash of
//	  data is not hashes[i], accuse k and drop it as a source; else keep
//	  it. With every chunk: install the state (certificate and digest are
//	  checked again), persist it (TransferInstance), resume the engine
//	  right after seq (Resumer) and deliver Transferred.
//
// Safety needs nothing from the peers: a state is installed only if the
// Quorum key's threshold signature (n−f shares, so f+1 correct replicas)
// certifies its digest, and every chunk is checked against hashes bound
// by that digest. Liveness needs one correct replica that holds the
// target's state and answers; Byzantine peers can waste at most their own
// requests: each faulty STATUS or CHUNK is provable, the sender is
// accused and never asked again, a certificate is verified at most once
// per (seq, digest) and per probe answer, and only solicited answers are
// looked at. Memory: one state of at most MaxSnapshot bytes whose size is
// certified before anything is allocated, and per-peer counters.

// TransferInstance carries state-transfer messages (wire.Transfer). An
// Input on it (any value) makes the replica probe all peers for their
// latest certified checkpoint (the runtime does so at start), and the
// record of a transferred state is persisted under it (TransferRecordKey).
var TransferInstance = CheckpointInstance.Child("xfer")

// TransferRecordKey is the key of the transferred-state record.
const TransferRecordKey = "state"

// MaxTransferMessage bounds an encoded transfer message.
const MaxTransferMessage = 1 << 20

// perSource is how many chunk requests may be outstanding at one source.
const perSource = 2

// statusBudget is how many STATUS messages a peer gets per checkpoint
// (it may restart, or probe again after dropping faulty sources; a
// flood of PROBEs is not answered beyond this).
const statusBudget = 4

// TransferStats count state-transfer work (for metrics and tests).
type TransferStats struct {
	Probes, Verified, Transfers, ChunksFetched, ChunksServed, Refused uint64
}

type xfer struct {
	probed   map[core.NodeID]uint64 // highest share seq that made us probe the peer
	waiting  map[core.NodeID]bool   // probes not yet answered
	bad      map[core.NodeID]bool   // peers that served provably wrong data
	verified Checkpoint             // highest certificate verified
	answered map[core.NodeID]uint64 // stable seq of the STATUS messages sent to the peer
	statuses map[core.NodeID]int    // how many (at most statusBudget)
	servedAt map[core.NodeID]uint64 // stable seq of the chunks served to the peer
	served   map[core.NodeID]uint64 // how many
	dl       *download
	stats    TransferStats
}

func newXfer() xfer {
	return xfer{probed: map[core.NodeID]uint64{}, waiting: map[core.NodeID]bool{}, bad: map[core.NodeID]bool{},
		answered: map[core.NodeID]uint64{}, statuses: map[core.NodeID]int{}, servedAt: map[core.NodeID]uint64{}, served: map[core.NodeID]uint64{}}
}

type download struct {
	cp       Checkpoint
	size     uint64
	hashes   [][32]byte
	buf      []byte
	have     []bool
	missing  int
	cursor   int           // first chunk never requested
	sources  []core.NodeID // sorted
	inflight map[core.NodeID]int
	asked    map[int][]core.NodeID // chunk → sources with a request outstanding
}

// TransferStats returns the state-transfer counters.
func (r *Replica) TransferStats() TransferStats {
	if r.cp == nil {
		return TransferStats{}
	}
	return r.cp.x.stats
}

// Transferring reports the checkpoint being fetched (ok false if none).
func (r *Replica) Transferring() (seq uint64, ok bool) {
	if r.cp == nil || r.cp.x.dl == nil {
		return 0, false
	}
	return r.cp.x.dl.cp.Seq, true
}

func (r *Replica) lag() uint64 {
	if r.p.TransferLag > 0 {
		return r.p.TransferLag
	}
	return r.cp.every
}

func (r *Replica) maxSnapshot() uint64 {
	if r.p.MaxSnapshot > 0 {
		return r.p.MaxSnapshot
	}
	return 256 << 20
}

func encodeTransfer(m *wire.Transfer) []byte {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("smr: marshal transfer: %v", err)) // cannot fail for this message
	}
	return b
}

// DecodeTransfer parses a state-transfer message from the network,
// checking its shape: a known kind, a 32-byte digest and hashes in a
// STATUS, at most SnapshotChunk bytes in a CHUNK.
func DecodeTransfer(b []byte) (*wire.Transfer, error) {
	if len(b) > MaxTransferMessage {
		return nil, fmt.Errorf("%w: transfer message of %d bytes", wire.ErrMalformed, len(b))
	}
	var m wire.Transfer
	if err := proto.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: transfer: %v", wire.ErrMalformed, err)
	}
	switch m.Kind {
	case wire.Transfer_PROBE, wire.Transfer_FETCH:
	case wire.Transfer_STATUS:
		if len(m.Digest) != 32 {
			return nil, fmt.Errorf("%w: STATUS digest of %d bytes", wire.ErrMalformed, len(m.Digest))
		}
		for _, h := range m.Hashes {
			if len(h) != 32 {
				return nil, fmt.Errorf("%w: STATUS chunk hash of %d bytes", wire.ErrMalformed, len(h))
			}
		}
	case wire.Transfer_CHUNK:
		if len(m.Data) > SnapshotChunk {
			return nil, fmt.Errorf("%w: CHUNK of %d bytes", wire.ErrMalformed, len(m.Data))
		}
	default:
		return nil, fmt.Errorf("%w: transfer: unknown kind %d", wire.ErrMalformed, m.Kind)
	}
	return &m, nil
}

// probe asks every peer not known to be faulty for its latest certified
// checkpoint.
func (r *Replica) probe(out *core.Output) {
	c := r.cp
	if c == nil {
		return
	}
	for _, k := range r.p.Group.Members() {
		if k != r.p.Self && !c.x.bad[k] {
			c.x.waiting[k] = true
			c.x.stats.Probes++
			out.SendTo(k, TransferInstance, encodeTransfer(&wire.Transfer{Kind: wire.Transfer_PROBE}))
		}
	}
}

// lagging: k sent a checkpoint share for seq, at least lag batches ahead
// of this replica. Ask k once per higher seq (a share is no proof, so k
// is asked for its certificate, which it must prove).
func (r *Replica) lagging(k core.NodeID, seq uint64, out *core.Output) {
	x := &r.cp.x
	if k == r.p.Self || x.bad[k] || seq <= x.probed[k] || (x.dl != nil && seq <= x.dl.cp.Seq) {
		return
	}
	x.probed[k], x.waiting[k] = seq, true
	x.stats.Probes++
	out.SendTo(k, TransferInstance, encodeTransfer(&wire.Transfer{Kind: wire.Transfer_PROBE}))
}

// caughtUp abandons a download that the engine overtook.
func (r *Replica) caughtUp() {
	if r.cp != nil && r.cp.x.dl != nil && r.position >= r.cp.x.dl.cp.Seq {
		r.cp.x.dl = nil
	}
}

func (r *Replica) onTransfer(m core.Message, out *core.Output) error {
	c := r.cp
	if c == nil || m.From == r.p.Self {
		return nil
	}
	msg, err := DecodeTransfer(m.Payload)
	if err != nil {
		out.Accuse(m.From, core.Malformed, m.Instance, "%v", err)
		return nil
	}
	switch msg.Kind {
	case wire.Transfer_PROBE:
		r.sendStatus(m.From, out)
	case wire.Transfer_FETCH:
		r.serveChunk(m.From, msg, out)
	case wire.Transfer_STATUS:
		r.onStatus(m.From, msg, out)
	case wire.Transfer_CHUNK:
		return r.onChunk(m.From, msg, out)
	}
	return nil
}

// sendStatus answers a PROBE (or a FETCH for a checkpoint this replica no
// longer holds) with its stable checkpoint, at most statusBudget times per
// peer and checkpoint, if it holds the checkpoint's state.
func (r *Replica) sendStatus(to core.NodeID, out *core.Output) {
	c := r.cp
	if c.stableSnap == nil {
		return
	}
	if c.x.answered[to] != c.stable.Seq {
		c.x.answered[to], c.x.statuses[to] = c.stable.Seq, 0
	}
	if c.x.statuses[to] >= statusBudget {
		return
	}
	c.x.statuses[to]++
	if c.stableHashes == nil {
		c.stableHashes = chunkHashes(c.stableSnap)
	}
	hs := make([][]byte, len(c.stableHashes))
	for i := range c.stableHashes {
		hs[i] = c.stableHashes[i][:]
	}
	out.SendTo(to, TransferInstance, encodeTransfer(&wire.Transfer{Kind: wire.Transfer_STATUS, Seq: c.stable.Seq,
		Digest: c.stable.Digest[:], Certificate: c.stable.Signature, Size: uint64(len(c.stableSnap)), Hashes: hs}))
}

// serveChunk answers FETCH(seq, i) for this replica's stable checkpoint;
// a peer gets at most twice the chunk count (plus slack) per checkpoint,
// so FETCH cannot be used to make this replica send without bound.
func (r *Replica) serveChunk(to core.NodeID, msg *wire.Transfer, out *core.Output) {
	c := r.cp
	if c.stableSnap == nil {
		return
	}
	if msg.Seq != c.stable.Seq {
		r.sendStatus(to, out) // it asks for a state this replica moved past
		return
	}
	n := chunkCount(uint64(len(c.stableSnap)))
	if uint64(msg.Index) >= n {
		out.Accuse(to, core.Malformed, TransferInstance, "FETCH chunk %d of %d", msg.Index, n)
		return
	}
	if c.x.servedAt[to] != msg.Seq {
		c.x.servedAt[to], c.x.served[to] = msg.Seq, 0
	}
	if c.x.served[to] >= 2*n+4 {
		return
	}
	c.x.served[to]++
	c.x.stats.ChunksServed++
	lo := int(msg.Index) * SnapshotChunk
	data := c.stableSnap[lo:min(len(c.stableSnap), lo+SnapshotChunk)]
	out.SendTo(to, TransferInstance, encodeTransfer(&wire.Transfer{Kind: wire.Transfer_CHUNK, Seq: msg.Seq, Index: msg.Index, Data: data}))
}

// refuse marks k as a faulty source and accuses it.
func (r *Replica) refuse(k core.NodeID, kind core.EvidenceKind, out *core.Output, format string, args ...any) {
	x := &r.cp.x
	x.bad[k] = true
	x.stats.Refused++
	out.Accuse(k, kind, TransferInstance, format, args...)
}

// onStatus takes a peer's answer to a probe.
func (r *Replica) onStatus(k core.NodeID, msg *wire.Transfer, out *core.Output) {
	c := r.cp
	x := &c.x
	source := x.dl != nil && slices.Contains(x.dl.sources, k)
	if (!x.waiting[k] && !source) || x.bad[k] {
		return // unsolicited: never worth a verification
	}
	delete(x.waiting, k)
	if source && msg.Seq != x.dl.cp.Seq {
		// A source answering a FETCH with its current checkpoint: it no
		// longer holds the target's state.
		r.dropSource(k, out)
	}
	if msg.Seq < r.position+r.lag() || (x.dl != nil && msg.Seq < x.dl.cp.Seq) {
		return // not worth a transfer (a lie about progress costs nothing)
	}
	if msg.Seq%c.every != 0 || msg.Size == 0 || msg.Size > r.maxSnapshot() || uint64(len(msg.Hashes)) != chunkCount(msg.Size) {
		r.refuse(k, core.Malformed, out, "STATUS for checkpoint %d of %d bytes in %d chunks", msg.Seq, msg.Size, len(msg.Hashes))
		return
	}
	hs := make([][32]byte, len(msg.Hashes))
	for i, h := range msg.Hashes {
		copy(hs[i][:], h)
	}
	var d [32]byte
	copy(d[:], msg.Digest)
	unsafe := r.p.UnsafeSkipTransferChecks
	if !unsafe && digestOfHashes(msg.Size, hs) != d {
		r.refuse(k, core.InvalidProof, out, "STATUS chunk hashes do not give the digest of checkpoint %d", msg.Seq)
		return
	}
	cp := Checkpoint{Seq: msg.Seq, Digest: d, Signature: msg.Certificate}
	if unsafe {
		// deliberately broken variant: no certificate check
	} else if cp.Seq != x.verified.Seq || cp.Digest != x.verified.Digest {
		if err := VerifyCheckpoint(c.pk, cp); err != nil {
			r.refuse(k, core.InvalidProof, out, "STATUS certificate of checkpoint %d: %v", msg.Seq, err)
			return
		}
		x.stats.Verified++
		if cp.Seq > x.verified.Seq {
			x.verified = cp
		}
	} else {
		cp = x.verified // the certificate already checked
	}
	switch {
	case x.dl == nil || cp.Seq > x.dl.cp.Seq:
		n := len(hs)
		x.dl = &download{cp: cp, size: msg.Size, hashes: hs, buf: make([]byte, msg.Size), have: make([]bool, n),
			missing: n, sources: []core.NodeID{k}, inflight: map[core.NodeID]int{}, asked: map[int][]core.NodeID{}}
	case cp.Seq == x.dl.cp.Seq && cp.Digest == x.dl.cp.Digest && !slices.Contains(x.dl.sources, k):
		x.dl.sources = append(x.dl.sources, k)
		slices.Sort(x.dl.sources)
	}
	r.pump(out)
}

// next picks the chunk to ask src for: the first never requested, else
// (endgame) the first missing one not already requested from src.
func (d *download) next(src core.NodeID) (int, bool) {
	if d.cursor < len(d.have) {
		d.cursor++
		return d.cursor - 1, true
	}
	for i, ok := range d.have {
		if !ok && !slices.Contains(d.asked[i], src) {
			return i, true
		}
	}
	return 0, false
}

// pump keeps perSource chunk requests outstanding at every source.
func (r *Replica) pump(out *core.Output) {
	d := r.cp.x.dl
	if d == nil {
		return
	}
	for _, src := range d.sources {
		for d.inflight[src] < perSource {
			i, ok := d.next(src)
			if !ok {
				break
			}
			d.asked[i] = append(d.asked[i], src)
			d.inflight[src]++
			out.SendTo(src, TransferInstance, encodeTransfer(&wire.Transfer{Kind: wire.Transfer_FETCH, Seq: d.cp.Seq, Index: uint32(i)}))
		}
	}
}

// dropSource forgets src's outstanding requests; without sources left the
// download is abandoned and the peers probed again.
func (r *Replica) dropSource(src core.NodeID, out *core.Output) {
	d := r.cp.x.dl
	d.sources = slices.DeleteFunc(d.sources, func(k core.NodeID) bool { return k == src })
	delete(d.inflight, src)
	for i, ks := range d.asked {
		d.asked[i] = slices.DeleteFunc(ks, func(k core.NodeID) bool { return k == src })
	}
	if len(d.sources) == 0 {
		r.cp.x.dl = nil
		r.probe(out)
		return
	}
	r.pump(out)
}

// onChunk takes a chunk a source was asked for.
func (r *Replica) onChunk(k core.NodeID, msg *wire.Transfer, out *core.Output) error {
	d := r.cp.x.dl
	if d == nil || msg.Seq != d.cp.Seq || int(msg.Index) >= len(d.have) || !slices.Contains(d.asked[int(msg.Index)], k) {
		return nil // unsolicited or late
	}
	i := int(msg.Index)
	d.asked[i] = slices.DeleteFunc(d.asked[i], func(x core.NodeID) bool { return x == k })
	d.inflight[k]--
	lo := i * SnapshotChunk
	want := min(SnapshotChunk, int(d.size)-lo)
	if len(msg.Data) != want || (!r.p.UnsafeSkipTransferChecks && chunkHash(uint64(i), msg.Data) != d.hashes[i]) {
		r.refuse(k, core.InvalidProof, out, "CHUNK %d of checkpoint %d does not match its certified hash", i, d.cp.Seq)
		r.dropSource(k, out)
		return nil
	}
	if !d.have[i] {
		copy(d.buf[lo:], msg.Data)
		d.have[i] = true
		d.missing--
		r.cp.x.stats.ChunksFetched++
	}
	if d.missing > 0 {
		r.pump(out)
		return nil
	}
	return r.complete(out)
}

// complete installs a fully fetched state. Every chunk matched a hash
// bound by the certified digest, so a failure here is local.
func (r *Replica) complete(out *core.Output) error {
	x := &r.cp.x
	d := x.dl
	x.dl = nil
	if err := r.install(d.cp, d.buf, !r.p.UnsafeSkipTransferChecks); err != nil {
		return fmt.Errorf("smr: install transferred checkpoint %d: %w", d.cp.Seq, err)
	}
	out.PersistRecord(TransferInstance, TransferRecordKey, EncodeTransferRecord(d.cp, d.buf))
	x.stats.Transfers++
	out.Deliver(Instance, Transferred{Checkpoint: d.cp})
	return nil
}

// EncodeTransferRecord is the persisted form of a transferred checkpoint:
// seq, digest, certificate (length-prefixed) and the state.
func EncodeTransferRecord(cp Checkpoint, state []byte) []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 48+len(cp.Signature)+len(state)), cp.Seq)
	b = append(b, cp.Digest[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(len(cp.Signature)))
	b = append(b, cp.Signature...)
	return append(b, state...)
}

// DecodeTransferRecord parses a persisted transferred checkpoint (the
// caller then verifies it with RestoreCheckpoint).
func DecodeTransferRecord(b []byte) (Checkpoint, []byte, error) {
	if len(b) < 48 {
		return Checkpoint{}, nil, fmt.Errorf("%w: transfer record of %d bytes", wire.ErrMalformed, len(b))
	}
	var cp Checkpoint
	cp.Seq = binary.BigEndian.Uint64(b)
	copy(cp.Digest[:], b[8:40])
	n := binary.BigEndian.Uint64(b[40:48])
	if n > uint64(len(b)-48) {
		return Checkpoint{}, nil, fmt.Errorf("%w: transfer record: certificate of %d bytes", wire.ErrMalformed, n)
	}
	cp.Signature = slices.Clone(b[48 : 48+n])
	return cp, b[48+n:], nil
}
