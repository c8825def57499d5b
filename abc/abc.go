package abc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/maftia/maftia/agreement/mvba"
	"github.com/maftia/maftia/broadcast/avid"
	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/crypto/coin"
	"github.com/maftia/maftia/crypto/sig"
	"github.com/maftia/maftia/crypto/tenc"
	"github.com/maftia/maftia/crypto/tsig"
	"github.com/maftia/maftia/wire"
)

// Domains of the digests and signatures of this package.
const (
	outcomeDomain = "maftia/abc/outcome/v1"
	storedDomain  = "maftia/abc/stored/v1"
	requestDomain = "maftia/abc/request/v1"
)

// Params configure the atomic broadcast at one replica.
type Params struct {
	Group core.Group
	Self  core.NodeID
	// Coin and CoinKey drive the MVBA of every epoch (threshold f+1).
	Coin    *coin.Coin
	CoinKey *tsig.SecretShare
	// Proof and ProofKey sign "I delivered j's batch" (threshold f+1: one
	// correct signer proves the batch is retrievable by everyone).
	Proof    *tsig.PublicKey
	ProofKey *tsig.SecretShare
	// Valid is the deterministic request predicate (client signature);
	// invalid requests are dropped at every correct replica alike.
	Valid func(request []byte) bool
	// BatchSize is the most requests a replica disseminates per epoch, and
	// MaxBatchBytes the most bytes of requests (the AVID payload bound).
	BatchSize, MaxBatchBytes int
	// MaxRequest bounds one request; MaxPending the local queue.
	MaxRequest, MaxPending int
	// Decrypt, DecryptKey and Label enable secure causal atomic broadcast
	// (Cachin–Kursawe–Petzold–Shoup 2001, §6): requests are TDH2
	// ciphertexts with label Label, ordered while encrypted; a replica
	// releases its decryption shares for an epoch only once that epoch's
	// order is fixed, and delivers the plaintexts (Valid is then applied
	// to the plaintext). Rand feeds the shares' DLEQ proofs.
	Decrypt    *tenc.PublicKey
	DecryptKey *tenc.SecretShare
	Label      []byte
	Rand       io.Reader
	// Window is how many epochs beyond the next undelivered one a replica
	// keeps state for; messages further ahead are dropped (and trigger
	// catch-up by FETCH). Retain is how many delivered epochs are kept to
	// answer FETCH; Dedup how many epochs of delivered-request digests are
	// remembered to drop duplicates.
	Window, Retain, Dedup uint64
}

// DefaultParams returns parameters for a group and its keys.
func DefaultParams(g core.Group, self core.NodeID, c *coin.Coin, coinKey *tsig.SecretShare,
	proof *tsig.PublicKey, proofKey *tsig.SecretShare, valid func([]byte) bool) Params {
	return Params{Group: g, Self: self, Coin: c, CoinKey: coinKey, Proof: proof, ProofKey: proofKey, Valid: valid,
		BatchSize: 256, MaxBatchBytes: 4 << 20, MaxRequest: 64 << 10, MaxPending: 1 << 16, Window: 4, Retain: 64, Dedup: 16}
}

// Check validates the parameters, refusing n < 3f+1.
func (p Params) Check() error {
	switch {
	case p.Group.N() < 3*p.Group.F()+1:
		return fmt.Errorf("abc: %w: need n ≥ 3f+1, have %s", core.ErrResilience, p.Group)
	case !p.Group.Contains(p.Self):
		return fmt.Errorf("abc: self %d not in %s", p.Self, p.Group)
	case p.Coin == nil || p.CoinKey == nil || p.Proof == nil || p.ProofKey == nil || p.Valid == nil:
		return errors.New("abc: coin, proof keys and Valid are required")
	case p.Proof.Threshold() != p.Group.F()+1:
		return fmt.Errorf("abc: proof key threshold %d, want f+1 = %d", p.Proof.Threshold(), p.Group.F()+1)
	case p.Decrypt != nil && (p.DecryptKey == nil || p.Rand == nil || p.Decrypt.Threshold() != p.Group.F()+1):
		return errors.New("abc: causal mode needs DecryptKey, Rand and a decryption threshold of f+1")
	case p.MaxBatchBytes < p.MaxRequest || p.MaxBatchBytes > wire.DefaultMaxPayload-batchOverhead(p.BatchSize):
		return fmt.Errorf("abc: MaxBatchBytes %d must be in [MaxRequest, %d]", p.MaxBatchBytes, wire.DefaultMaxPayload-batchOverhead(p.BatchSize))
	case p.BatchSize < 1 || p.MaxRequest < 1 || p.MaxPending < 1 || p.Window < 3 || p.Retain < 1 || p.Dedup < 1:
		return errors.New("abc: BatchSize, MaxRequest, MaxPending, Retain, Dedup must be positive and Window ≥ 3 (epochs are pipelined two deep; with Window 2 a replica two epochs behind drops messages the others need when f replicas are down)")
	}
	return nil
}

// Digest identifies a request or an AVID outcome.
type Digest [32]byte

// proof is a certificate that j's batch of an epoch is retrievable. It is
// interpolated from f+1 shares as soon as they arrive but checked later:
// the proofs an epoch proposes are checked together in one batched
// pairing check (verifyProofs), the others only if an entry equal to one
// must be judged (proofValid). shares are kept until then, to find the
// bad ones should the check fail.
type proof struct {
	digest   Digest
	sig      []byte
	s        tsig.Signature
	verified bool
	shares   []tsig.Share
}

// epoch is the state of one epoch at one replica.
type epoch struct {
	num       uint64
	inst      core.InstanceID
	started   bool
	interest  map[core.NodeID]bool // senders whose own AVID we saw
	avids     []*avid.AVID
	delivered []bool
	outcome   [][]byte // payload, nil for ⊥
	digest    []Digest
	signers   []map[core.NodeID]bool // per j: who sent STORED for j
	shares    []map[Digest][]tsig.Share
	proofs    []*proof
	nproofs   int
	proposed  bool
	mvba      *mvba.MVBA
	decision  *wire.ABCProposal
	verified  map[string]bool // proof entries already checked (validity cache)
	scratch   core.Output
}

// output is a delivered epoch kept for FETCH answers.
type output struct {
	requests [][]byte
	digest   Digest
	shares   [][]byte // causal mode: this replica's decryption shares
}

// Ops counts work for benchmarks and metrics.
type Ops struct {
	SharesSigned, SharesVerified, Combines, CertVerifies, Epochs, Fetched uint64
	// ProofBatches counts batched checks of an epoch's proofs (one
	// pairing check for all of them, tsig.VerifyBatch).
	ProofBatches uint64
}

// ABC is atomic broadcast at one replica; see the package documentation.
type ABC struct {
	p    Params
	root core.InstanceID

	pending   []queued
	fresh     int // requests in pending with inflight == 0 (hasFresh)
	inPending map[Digest]bool

	epochs      map[uint64]*epoch
	nextDeliver uint64 // first epoch not yet delivered
	seq         uint64 // last batch sequence number delivered
	delivered   map[Digest]uint64
	outputs     map[uint64]output
	ahead       map[core.NodeID]uint64 // highest epoch whose messages from this sender we dropped
	fetchSent   map[uint64]bool
	fetchWants  map[core.NodeID]uint64 // requester → epoch it wants
	fetchVotes  map[uint64]map[core.NodeID]Digest
	fetchBodies map[uint64]map[Digest][][]byte
	causal      *causal
	ops         Ops
	// Resume support (resume.go): the request digests each recent epoch
	// delivered, and the epoch of each batch emitted during this Step.
	recent  map[uint64][]Digest
	emitted map[uint64]uint64
	// Restart without amnesia (recover.go, docs/adr/0008): this replica
	// has never created state for, nor sent in, an epoch at or above mark,
	// and mark is durable before any send in an epoch below it. Epochs
	// below mute (the mark recovered at restart) are sat out.
	mark, mute uint64
}

type queued struct {
	req      []byte
	digest   Digest
	since    uint64 // epoch at which it was queued
	inflight uint64 // 1 + epoch whose batch carries it; 0 if none
}

// New creates the atomic broadcast rooted at instance root.
func New(root core.InstanceID, p Params) (*ABC, error) {
	if err := p.Check(); err != nil {
		return nil, err
	}
	a := &ABC{
		p: p, root: root, inPending: map[Digest]bool{}, epochs: map[uint64]*epoch{},
		delivered: map[Digest]uint64{}, outputs: map[uint64]output{}, ahead: map[core.NodeID]uint64{},
		fetchSent: map[uint64]bool{}, fetchWants: map[core.NodeID]uint64{},
		fetchVotes: map[uint64]map[core.NodeID]Digest{}, fetchBodies: map[uint64]map[Digest][][]byte{},
		recent: map[uint64][]Digest{}, emitted: map[uint64]uint64{},
	}
	if a.causal = newCausal(p); a.causal != nil {
		a.causal.root, a.causal.emitter, a.causal.ops = root, a.emit, &a.ops
	}
	return a, nil
}

// Ops returns the work counters.
func (a *ABC) Ops() Ops { return a.ops }

// NextEpoch is the first epoch not yet delivered.
func (a *ABC) NextEpoch() uint64 { return a.nextDeliver }

// Pending is the number of queued requests not yet delivered.
func (a *ABC) Pending() int { return len(a.pending) }

// Memory is what a replica holds, for bounds checks and metrics.
type Memory struct {
	LiveEpochs, Pending, Retained, DedupDigests, FetchState int
}

// Memory reports the sizes of the replica's bounded state.
func (a *ABC) Memory() Memory {
	return Memory{LiveEpochs: len(a.epochs), Pending: len(a.pending), Retained: len(a.outputs),
		DedupDigests: len(a.delivered), FetchState: len(a.fetchVotes) + len(a.fetchWants) + len(a.fetchSent)}
}

// LiveEpochs is the number of epochs with state (bounded by Window+1).
func (a *ABC) LiveEpochs() int { return len(a.epochs) }

func requestDigest(req []byte) Digest { return sig.Digest(requestDomain, req) }

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func (a *ABC) epochInst(e uint64) core.InstanceID { return a.root.ChildN("e", e) }

// Step applies one event.
func (a *ABC) Step(ev core.Event, out *core.Output) error {
	a.forgetEmitted()
	switch e := ev.(type) {
	case core.Input:
		req, ok := e.Value.([]byte)
		if !ok {
			return fmt.Errorf("abc: input is %T, want []byte", e.Value)
		}
		a.enqueue(req)
	case core.Message:
		if err := a.receive(e, out); err != nil {
			return err
		}
	default:
		return fmt.Errorf("abc: unexpected event %s", ev)
	}
	return a.progress(out)
}

// enqueue adds a client request to the local queue (bounded; duplicates
// and requests delivered recently are ignored).
func (a *ABC) enqueue(req []byte) {
	if len(req) > a.p.MaxRequest || len(a.pending) >= a.p.MaxPending {
		return
	}
	d := requestDigest(req)
	if a.inPending[d] {
		return
	}
	if _, done := a.delivered[d]; done {
		return
	}
	a.inPending[d] = true
	a.pending = append(a.pending, queued{req: req, digest: d, since: a.nextDeliver})
	a.fresh++
}

func (a *ABC) receive(m core.Message, out *core.Output) error {
	if m.Instance == a.root {
		a.onRoot(m, out)
		return nil
	}
	if !m.Instance.Within(a.root) || m.Instance.Depth() < a.root.Depth()+1 {
		out.Accuse(m.From, core.Malformed, m.Instance, "not an atomic-broadcast instance")
		return nil
	}
	d := a.root.Depth()
	name, num, ok := m.Instance.Prefix(d + 1).Last()
	if name != "e" || !ok {
		out.Accuse(m.From, core.Malformed, m.Instance, "bad epoch segment")
		return nil
	}
	if num < a.nextDeliver {
		return nil // a finished epoch
	}
	if num < a.mute {
		// An epoch this replica may have spoken in before a restart: it
		// sits it out and learns its output by FETCH once f+1 replicas
		// are seen at or beyond it (docs/adr/0008).
		if num > a.ahead[m.From] {
			a.ahead[m.From] = num
		}
		return nil
	}
	if num >= a.nextDeliver+a.p.Window {
		// Too far ahead to keep: remember that this sender is there; if
		// f+1 are, the epochs in between are fetched (ATTACKS row 2: no
		// unbounded buffering for a replica that fell behind).
		if num > a.ahead[m.From] {
			a.ahead[m.From] = num
		}
		return nil
	}
	ep := a.epoch(num, out)
	if m.Instance.Depth() == d+1 {
		return a.onStored(ep, m, out)
	}
	child := m.Instance.Prefix(d + 2)
	cname, j, hasIdx := child.Last()
	switch {
	case cname == "avid" && hasIdx && a.p.Group.Contains(core.NodeID(j)):
		if m.From == core.NodeID(j) {
			ep.interest[m.From] = true
		}
		return a.stepAVID(ep, core.NodeID(j), m, out)
	case cname == "mvba" && !hasIdx:
		return a.stepMVBA(ep, m, out)
	}
	out.Accuse(m.From, core.Malformed, m.Instance, "unknown atomic-broadcast child")
	return nil
}

// epoch returns epoch num's state, creating it (and raising the durable
// mark first, in the same Output, if num reaches it) on first use.
func (a *ABC) epoch(num uint64, out *core.Output) *epoch {
	if ep, ok := a.epochs[num]; ok {
		return ep
	}
	a.raiseMark(num, out)
	n := a.p.Group.N()
	ep := &epoch{
		num: num, inst: a.epochInst(num), interest: map[core.NodeID]bool{},
		avids: make([]*avid.AVID, n), delivered: make([]bool, n), outcome: make([][]byte, n),
		digest: make([]Digest, n), signers: make([]map[core.NodeID]bool, n),
		shares: make([]map[Digest][]tsig.Share, n), proofs: make([]*proof, n),
		verified: map[string]bool{},
	}
	for i := range n {
		ep.signers[i] = map[core.NodeID]bool{}
		ep.shares[i] = map[Digest][]tsig.Share{}
	}
	a.epochs[num] = ep
	return ep
}

// stepAVID runs j's dissemination instance of the epoch.
func (a *ABC) stepAVID(ep *epoch, j core.NodeID, ev core.Event, out *core.Output) error {
	if ep.delivered[j-1] {
		return nil
	}
	inst := ep.inst.ChildN("avid", uint64(j))
	if ep.avids[j-1] == nil {
		av, err := avid.New(inst, avid.Params{Group: a.p.Group, Self: a.p.Self, Sender: j,
			MaxPayload: a.p.MaxBatchBytes + batchOverhead(a.p.BatchSize)})
		if err != nil {
			return err
		}
		ep.avids[j-1] = av
	}
	ep.scratch.Reset()
	if err := ep.avids[j-1].Step(ev, &ep.scratch); err != nil {
		return fmt.Errorf("abc: %s: %w", inst, err)
	}
	moveEffects(out, &ep.scratch)
	for _, d := range ep.scratch.Deliveries {
		a.onAVIDDelivered(ep, j, d.Value, out)
	}
	if ep.avids[j-1].Finished() {
		ep.avids[j-1] = nil
	}
	return nil
}

// moveEffects passes a child's effects up, except its records: the
// sub-protocols persist what they said so that they can be rebuilt after a
// crash, but abc never rebuilds an epoch — after a restart it sits out
// every epoch it may have spoken in (the mark, docs/adr/0008) — so those
// records would only cost a synced write before most sends.
func moveEffects(out, from *core.Output) {
	out.Sends = append(out.Sends, from.Sends...)
	out.Timers = append(out.Timers, from.Timers...)
	out.Requests = append(out.Requests, from.Requests...)
	out.Evidence = append(out.Evidence, from.Evidence...)
}

func (a *ABC) storedMessage(ep *epoch, j core.NodeID, d Digest) []byte {
	return sig.Encode(storedDomain, []byte(a.root), u64(ep.num), u64(uint64(j)), d[:])
}

// upon a-deliver of j's batch (or ⊥) in epoch e: send STORED(j, d, share)
// to all, where d is the digest of the outcome.
func (a *ABC) onAVIDDelivered(ep *epoch, j core.NodeID, v any, out *core.Output) {
	var d Digest
	switch x := v.(type) {
	case []byte:
		d = sig.Digest(outcomeDomain, []byte(a.root), u64(ep.num), u64(uint64(j)), []byte{1}, x)
		ep.outcome[j-1] = x
	case avid.Invalid:
		d = sig.Digest(outcomeDomain, []byte(a.root), u64(ep.num), u64(uint64(j)), []byte{0}, x.Root[:])
	default:
		return
	}
	ep.delivered[j-1], ep.digest[j-1] = true, d
	share := tsig.SignShare(a.p.ProofKey, a.storedMessage(ep, j, d))
	a.ops.SharesSigned++
	out.Broadcast(ep.inst, encode(&wire.ABC{Kind: wire.ABC_STORED, Sender: uint32(j), Digest: d[:], Share: share.Marshal()}))
}

// upon STORED(j, d, share) from k: keep one per (j, k); with f+1 valid
// shares on the same d, combine them into j's proof.
func (a *ABC) onStored(ep *epoch, m core.Message, out *core.Output) error {
	msg, err := decode(m.Payload)
	if err != nil || msg.Kind != wire.ABC_STORED || !a.p.Group.Contains(core.NodeID(msg.Sender)) || len(msg.Digest) != 32 {
		out.Accuse(m.From, core.Malformed, m.Instance, "bad STORED message")
		return nil
	}
	j := core.NodeID(msg.Sender)
	p := ep.proofs[j-1]
	if ep.signers[j-1][m.From] || (p != nil && p.verified) {
		return nil
	}
	share, err := tsig.UnmarshalShare(msg.Share)
	if err != nil || share.Index != uint32(m.From) {
		out.Accuse(m.From, core.InvalidProof, m.Instance, "malformed proof share")
		return nil
	}
	ep.signers[j-1][m.From] = true
	var d Digest
	copy(d[:], msg.Digest)
	if p != nil {
		// The proof is not checked yet: keep the later shares on its
		// digest, which replace bad ones should the check fail (at most
		// one per replica).
		if d == p.digest {
			p.shares = append(p.shares, share)
		}
		return nil
	}
	ep.shares[j-1][d] = append(ep.shares[j-1][d], share)
	if len(ep.shares[j-1][d]) < a.p.Group.F()+1 {
		return nil
	}
	// Interpolate now, check later with the epoch's other proofs
	// (verifyProofs); a structural defect goes to the robust combiner.
	a.ops.Combines++
	sigma, err := tsig.CombineVerified(a.p.Proof, ep.shares[j-1][d], a.storedMessage(ep, j, d))
	if err != nil {
		a.robustCombine(ep, j, d, out)
		return nil
	}
	ep.proofs[j-1] = &proof{digest: d, sig: sigma.Marshal(), s: sigma, shares: ep.shares[j-1][d]}
	ep.nproofs++
	ep.shares[j-1] = nil
	return nil
}

// robustCombine combines j's shares on d, verifying as it goes: on failure
// it names the bad shares (evidence), drops them and waits for more.
func (a *ABC) robustCombine(ep *epoch, j core.NodeID, d Digest, out *core.Output) {
	msgBytes := a.storedMessage(ep, j, d)
	sigma, bad, err := tsig.Combine(a.p.Proof, ep.shares[j-1][d], msgBytes)
	if err != nil && !errors.Is(err, tsig.ErrTooFewShares) {
		// A structural defect (a share for another message or under
		// another key) names no culprit: find them one by one, or a
		// single such share would block the proof forever (found by the
		// invalid-shares attack of maftia demo).
		bad = tsig.Culprits(a.p.Proof, ep.shares[j-1][d], msgBytes)
	}
	if err != nil {
		a.ops.SharesVerified += uint64(len(ep.shares[j-1][d]))
		kept := ep.shares[j-1][d][:0]
		for _, s := range ep.shares[j-1][d] {
			if slices.Contains(bad, s.Index) {
				out.Accuse(core.NodeID(s.Index), core.InvalidProof, ep.inst, "invalid STORED share for replica %d", j)
				continue
			}
			kept = append(kept, s)
		}
		ep.shares[j-1][d] = kept
		return
	}
	ep.proofs[j-1] = &proof{digest: d, sig: sigma.Marshal(), s: sigma, verified: true}
	ep.nproofs++
	ep.shares[j-1] = nil
}

// verifyProofs checks every proof not yet checked with one batched
// pairing check (tsig.VerifyBatch) — instead of one check per proof as
// they complete. A proof that fails was interpolated from a bad share: it
// is dropped and its shares go through the robust combiner, which names
// the culprits and keeps the good shares for when more arrive.
func (a *ABC) verifyProofs(ep *epoch, out *core.Output) {
	var idx []int
	var sigs []tsig.Signature
	var msgs [][]byte
	for i, p := range ep.proofs {
		if p != nil && !p.verified {
			idx = append(idx, i)
			sigs = append(sigs, p.s)
			msgs = append(msgs, a.storedMessage(ep, core.NodeID(i+1), p.digest))
		}
	}
	if len(idx) == 0 {
		return
	}
	a.ops.ProofBatches++
	errs := tsig.VerifyBatch(a.p.Proof, sigs, msgs)
	for k, i := range idx {
		p := ep.proofs[i]
		if errs[k] == nil {
			p.verified, p.shares = true, nil
			continue
		}
		ep.proofs[i] = nil
		ep.nproofs--
		ep.shares[i] = map[Digest][]tsig.Share{p.digest: p.shares}
		a.robustCombine(ep, core.NodeID(i+1), p.digest, out)
	}
}

// valid is MVBA's external-validity predicate for epoch e: at least n−f
// entries, senders strictly increasing, each with a valid proof.
func (a *ABC) valid(e uint64) func([]byte) bool {
	return func(v []byte) bool {
		var prop wire.ABCProposal
		if proto.Unmarshal(v, &prop) != nil || len(prop.Entries) < a.p.Group.Quorum() || len(prop.Entries) > a.p.Group.N() {
			return false
		}
		prev := uint32(0)
		for _, en := range prop.Entries {
			if en.Sender <= prev || !a.p.Group.Contains(core.NodeID(en.Sender)) || len(en.Digest) != 32 {
				return false
			}
			prev = en.Sender
			if !a.proofValid(e, en) {
				return false
			}
		}
		return true
	}
}

// proofValid checks one proof entry. Threshold BLS signatures are unique,
// so an entry equal to a proof this replica combined and checked itself is
// valid without a pairing; other results are cached per epoch. Both
// lookups come before the signature is even decoded (the subgroup check
// of a decoded point costs about a tenth of a pairing, and every proposal
// of an epoch repeats the same proofs). The answer is the same as a plain
// verification, so the predicate stays deterministic.
func (a *ABC) proofValid(e uint64, en *wire.ABCEntry) bool {
	ep := a.epochs[e]
	var own *proof // this replica's proof, equal to the entry but not yet checked
	if ep != nil {
		if p := ep.proofs[en.Sender-1]; p != nil && bytes.Equal(p.digest[:], en.Digest) && bytes.Equal(p.sig, en.Signature) {
			if p.verified {
				return true
			}
			own = p
		}
	}
	key := string(u64(uint64(en.Sender))) + string(en.Digest) + string(en.Signature)
	if ep != nil {
		if ok, seen := ep.verified[key]; seen {
			return ok
		}
	}
	msg := sig.Encode(storedDomain, []byte(a.root), u64(e), u64(uint64(en.Sender)), en.Digest)
	s, err := tsig.UnmarshalSignature(en.Signature)
	ok := err == nil
	if ok {
		a.ops.CertVerifies++
		ok = tsig.Verify(a.p.Proof, s, msg) == nil
	}
	if ep != nil && len(ep.verified) < 4*a.p.Group.N()*a.p.Group.N() {
		ep.verified[key] = ok
	}
	if ok && own != nil {
		own.verified, own.shares = true, nil // the same bytes: checked once
	}
	return ok
}

func (a *ABC) stepMVBA(ep *epoch, ev core.Event, out *core.Output) error {
	if ep.decision != nil {
		// Decided: the instance only needs to help others finish.
		if ep.mvba == nil || ep.mvba.Finished() {
			return nil
		}
	}
	if ep.mvba == nil {
		params := mvba.DefaultParams(a.p.Group, a.p.Self, a.p.Coin, a.p.CoinKey, a.valid(ep.num))
		params.MaxValue = a.p.Group.N() * 512
		m, err := mvba.New(ep.inst.Child("mvba"), params)
		if err != nil {
			return err
		}
		ep.mvba = m
	}
	ep.scratch.Reset()
	if err := ep.mvba.Step(ev, &ep.scratch); err != nil {
		return fmt.Errorf("abc: %s/mvba: %w", ep.inst, err)
	}
	moveEffects(out, &ep.scratch)
	for _, d := range ep.scratch.Deliveries {
		dec, ok := d.Value.(mvba.Decision)
		if !ok || ep.decision != nil {
			continue
		}
		var prop wire.ABCProposal
		if err := proto.Unmarshal(dec.Value, &prop); err != nil {
			return fmt.Errorf("abc: MVBA decided an invalid proposal: %w", err)
		}
		ep.decision = &prop
	}
	return nil
}

// progress starts epochs, proposes, and delivers decided epochs in order.
func (a *ABC) progress(out *core.Output) error {
	for {
		moved := false
		for e := a.nextDeliver; e < a.nextDeliver+a.p.Window; e++ {
			ep := a.epochs[e]
			// Start an epoch when there is work and the previous epoch has
			// proposed (pipelining depth 2), or when f+1 replicas started
			// it (at least one correct one wants it).
			if e < a.mute {
				continue // sat out after a restart
			}
			prevProposed := e == a.nextDeliver || e-1 < a.mute || (a.epochs[e-1] != nil && a.epochs[e-1].proposed)
			wantsWork := a.hasFresh(e) && prevProposed && e <= a.nextDeliver+1
			if (ep == nil || !ep.started) && (wantsWork || (ep != nil && len(ep.interest) > a.p.Group.F())) {
				ep = a.epoch(e, out)
				if err := a.start(ep, out); err != nil {
					return err
				}
				moved = true
			}
			if ep != nil && ep.started && !ep.proposed && ep.nproofs >= a.p.Group.Quorum() && prevProposed {
				a.verifyProofs(ep, out)
				if ep.nproofs >= a.p.Group.Quorum() {
					if err := a.propose(ep, out); err != nil {
						return err
					}
				}
				moved = true
			}
		}
		if ep := a.epochs[a.nextDeliver]; ep != nil && ep.decision != nil {
			ok, err := a.deliver(ep, out)
			if err != nil {
				return err
			}
			moved = moved || ok
		}
		a.maybeFetch(out)
		if !moved {
			return nil
		}
	}
}

// start disseminates this replica's batch for the epoch by AVID.
func (a *ABC) start(ep *epoch, out *core.Output) error {
	ep.started = true
	a.ops.Epochs++
	batch := &wire.ABCBatch{Requests: a.selectBatch(ep.num)}
	return a.stepAVID(ep, a.p.Self, core.Input{Instance: ep.inst.ChildN("avid", uint64(a.p.Self)), Value: encode(batch)}, out)
}

// batchOverhead bounds the protobuf framing of a batch of k requests.
func batchOverhead(k int) int { return 16*k + 64 }

// hasFresh reports whether some queued request could go into epoch e's
// batch (kept as a count: this is asked on every step).
func (a *ABC) hasFresh(e uint64) bool { return a.fresh > 0 }

// prunePending drops delivered requests from the queue once epoch e is
// delivered; those that rode in a batch of epoch ≤ e that was not chosen
// become eligible again.
func (a *ABC) prunePending(e uint64) {
	kept := a.pending[:0]
	a.fresh = 0
	for _, q := range a.pending {
		if _, done := a.delivered[q.digest]; done {
			delete(a.inPending, q.digest)
			continue
		}
		if q.inflight != 0 && q.inflight <= e+1 {
			q.inflight = 0
		}
		if q.inflight == 0 {
			a.fresh++
		}
		kept = append(kept, q)
	}
	clear(a.pending[len(kept):])
	a.pending = kept
}

// selectBatch picks up to BatchSize requests: first those whose digest
// falls in this replica's bucket (so correct replicas rarely disseminate
// the same request twice), then any request that has waited two epochs
// (so a Byzantine bucket owner cannot censor: censorship resistance).
func (a *ABC) selectBatch(e uint64) [][]byte {
	n := uint64(a.p.Group.N())
	var picked [][]byte
	size := 0
	for pass := 0; pass < 2 && len(picked) < a.p.BatchSize; pass++ {
		for i := range a.pending {
			q := &a.pending[i]
			if len(picked) == a.p.BatchSize {
				break
			}
			if q.inflight != 0 || size+len(q.req) > a.p.MaxBatchBytes {
				continue
			}
			mine := binary.BigEndian.Uint64(q.digest[:8])%n == uint64(a.p.Self-1)
			if (pass == 0 && mine) || (pass == 1 && !mine && e >= q.since+2) {
				q.inflight = e + 1
				a.fresh--
				size += len(q.req)
				picked = append(picked, q.req)
			}
		}
	}
	return picked
}

// propose gives MVBA every proof held (at least n−f), by sender.
func (a *ABC) propose(ep *epoch, out *core.Output) error {
	ep.proposed = true
	var prop wire.ABCProposal
	for j, p := range ep.proofs {
		if p != nil {
			prop.Entries = append(prop.Entries, &wire.ABCEntry{Sender: uint32(j + 1), Digest: p.digest[:], Signature: p.sig})
		}
	}
	return a.stepMVBA(ep, core.Input{Instance: ep.inst.Child("mvba"), Value: encode(&prop)}, out)
}

// deliver outputs a decided epoch once every chosen batch is at hand (AVID
// totality: a proof means a correct replica delivered it, so all will).
func (a *ABC) deliver(ep *epoch, out *core.Output) (bool, error) {
	var reqs [][]byte
	seen := map[Digest]bool{}
	for _, en := range ep.decision.Entries {
		j := en.Sender
		if !ep.delivered[j-1] {
			return false, nil
		}
		if !bytes.Equal(ep.digest[j-1][:], en.Digest) {
			return false, fmt.Errorf("abc: epoch %d: AVID of %d delivered another outcome than its proof certifies", ep.num, j)
		}
		if ep.outcome[j-1] == nil {
			continue // ⊥: the sender dispersed an inconsistent encoding
		}
		var batch wire.ABCBatch
		if proto.Unmarshal(ep.outcome[j-1], &batch) != nil {
			continue
		}
		for _, r := range batch.Requests {
			d := requestDigest(r)
			if seen[d] || len(r) > a.p.MaxRequest {
				continue
			}
			if _, old := a.delivered[d]; old || !a.admissible(r) {
				continue
			}
			seen[d] = true
			reqs = append(reqs, r)
		}
	}
	a.finish(ep.num, reqs, out)
	return true, nil
}

// finish records epoch e's output (from the protocol or from FETCH),
// delivers it, and garbage-collects.
func (a *ABC) finish(e uint64, reqs [][]byte, out *core.Output) {
	var ds []Digest
	for _, r := range reqs {
		d := requestDigest(r)
		a.delivered[d] = e
		ds = append(ds, d)
	}
	if len(ds) > 0 {
		a.recent[e] = ds
	}
	var shares [][]byte
	if a.causal != nil {
		shares = a.causal.ordered(e, reqs, out) // delivers once decrypted
	} else if len(reqs) > 0 {
		a.emit(e, reqs, out)
	}
	a.outputs[e] = output{requests: reqs, digest: epochDigest(e, reqs), shares: shares}
	delete(a.epochs, e)
	a.nextDeliver = e + 1
	// Drop delivered requests from the queue; those that rode in a batch
	// of this epoch that was not chosen become eligible again.
	a.prunePending(e)
	// Bounded memory: forget old outputs, digests and fetch state.
	for old := range a.outputs {
		if old+a.p.Retain <= e {
			delete(a.outputs, old)
		}
	}
	for d, at := range a.delivered {
		if at+a.p.Dedup <= e {
			delete(a.delivered, d)
		}
	}
	for old := range a.fetchVotes {
		if old <= e {
			delete(a.fetchVotes, old)
			delete(a.fetchBodies, old)
			delete(a.fetchSent, old)
		}
	}
	// Answer replicas that asked for this epoch.
	for who, want := range a.fetchWants {
		if want == e {
			a.answerFetch(who, e, out)
			delete(a.fetchWants, who)
		}
	}
}

// emit delivers one batch of plaintext requests of epoch e in order.
func (a *ABC) emit(e uint64, reqs [][]byte, out *core.Output) {
	a.seq++
	a.emitted[a.seq] = e
	out.Deliver(a.root, &wire.Batch{Seq: a.seq, Requests: reqs})
}

// admissible is the request check at ordering time: the client's
// signature, or in causal mode the ciphertext's validity proof and label
// (the plaintext's signature is checked after decryption).
func (a *ABC) admissible(r []byte) bool {
	if a.causal != nil {
		return a.causal.check(r) != nil
	}
	return a.p.Valid(r)
}

// answerFetch sends a delivered epoch (and, in causal mode, this
// replica's decryption shares for it) to a replica that fell behind.
func (a *ABC) answerFetch(to core.NodeID, e uint64, out *core.Output) {
	o := a.outputs[e]
	out.SendTo(to, a.root, encode(&wire.ABC{Kind: wire.ABC_EPOCH, Epoch: e, Requests: o.requests}))
	if a.causal != nil && len(o.requests) > 0 {
		out.SendTo(to, a.root, encode(&wire.ABC{Kind: wire.ABC_DECRYPT, Epoch: e, Shares: o.shares}))
	}
}

func epochDigest(e uint64, reqs [][]byte) Digest {
	fields := append([][]byte{u64(e)}, reqs...)
	return sig.Digest("maftia/abc/epoch/v1", fields...)
}

// maybeFetch asks for the next epoch when f+1 replicas showed they are at
// least Window epochs ahead: messages for it were dropped here, so the
// protocol alone may never complete it.
func (a *ABC) maybeFetch(out *core.Output) {
	var marks []uint64
	for _, e := range a.ahead {
		marks = append(marks, e)
	}
	if len(marks) <= a.p.Group.F() {
		return
	}
	slices.Sort(marks)
	// The (f+1)-th highest mark was reached by at least one correct replica.
	reached := marks[len(marks)-1-a.p.Group.F()]
	if a.nextDeliver > reached || a.fetchSent[a.nextDeliver] {
		return
	}
	a.fetchSent[a.nextDeliver] = true
	out.Broadcast(a.root, encode(&wire.ABC{Kind: wire.ABC_FETCH, Epoch: a.nextDeliver}))
}

// onRoot handles FETCH and EPOCH.
func (a *ABC) onRoot(m core.Message, out *core.Output) {
	msg, err := decode(m.Payload)
	if err != nil {
		out.Accuse(m.From, core.Malformed, m.Instance, "%v", err)
		return
	}
	switch msg.Kind {
	case wire.ABC_FETCH:
		if m.From == a.p.Self {
			return
		}
		if _, ok := a.outputs[msg.Epoch]; ok {
			a.answerFetch(m.From, msg.Epoch, out)
		} else if msg.Epoch >= a.nextDeliver {
			// Answer once delivered, even beyond the window: the requester
			// may have seen f+1 others there while this replica lags (one
			// pending request per requester, so memory stays bounded).
			a.fetchWants[m.From] = msg.Epoch
		}
	case wire.ABC_EPOCH:
		e := msg.Epoch
		if e != a.nextDeliver || !a.fetchSent[e] {
			return // unsolicited or stale
		}
		votes := a.fetchVotes[e]
		if votes == nil {
			votes = map[core.NodeID]Digest{}
			a.fetchVotes[e] = votes
			a.fetchBodies[e] = map[Digest][][]byte{}
		}
		if _, dup := votes[m.From]; dup {
			return
		}
		d := epochDigest(e, msg.Requests)
		votes[m.From] = d
		if _, ok := a.fetchBodies[e][d]; !ok {
			a.fetchBodies[e][d] = msg.Requests
		}
		count := 0
		for _, v := range votes {
			if v == d {
				count++
			}
		}
		if count > a.p.Group.F() {
			// f+1 identical answers: one is from a correct replica, and
			// all correct replicas delivered the same epoch output.
			a.ops.Fetched++
			a.finish(e, a.fetchBodies[e][d], out)
		}
	case wire.ABC_DECRYPT:
		if a.causal == nil {
			out.Accuse(m.From, core.Unexpected, m.Instance, "DECRYPT without causal mode")
			return
		}
		a.causal.onShares(m.From, msg, a.nextDeliver, out)
	default:
		out.Accuse(m.From, core.Malformed, m.Instance, "unexpected %s on the root instance", msg.Kind)
	}
}

func encode(m proto.Message) []byte {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("abc: marshal: %v", err))
	}
	return b
}

// Decode parses an ABC message from the network.
func Decode(b []byte) (*wire.ABC, error) { return decode(b) }

func decode(b []byte) (*wire.ABC, error) {
	var m wire.ABC
	if err := proto.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: abc: %v", wire.ErrMalformed, err)
	}
	switch m.Kind {
	case wire.ABC_STORED, wire.ABC_FETCH, wire.ABC_EPOCH, wire.ABC_DECRYPT:
		return &m, nil
	}
	return nil, fmt.Errorf("%w: abc: unknown kind %d", wire.ErrMalformed, m.Kind)
}

// Describe renders a payload for traces.
func Describe(payload []byte) string {
	m, err := decode(payload)
	if err != nil {
		return fmt.Sprintf("garbage(%dB)", len(payload))
	}
	switch m.Kind {
	case wire.ABC_STORED:
		return fmt.Sprintf("STORED j=%d d=%x", m.Sender, m.Digest[:min(4, len(m.Digest))])
	case wire.ABC_FETCH:
		return fmt.Sprintf("FETCH e=%d", m.Epoch)
	case wire.ABC_DECRYPT:
		return fmt.Sprintf("DECRYPT e=%d shares=%d", m.Epoch, len(m.Shares))
	}
	return fmt.Sprintf("EPOCH e=%d reqs=%d", m.Epoch, len(m.Requests))
}
