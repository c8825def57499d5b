package hybrid

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/ttcb"
	"github.com/maftia/maftia/wire"
)

// Params configure the hybrid ordering engine at one replica.
type Params struct {
	Group core.Group
	Self  core.NodeID
	// Valid is the deterministic request predicate (client signature):
	// a correct replica proposes, and votes for, only batches whose
	// requests all pass it.
	Valid func(request []byte) bool
	// BatchSize and MaxBatchBytes bound one replica's batch per epoch;
	// MaxRequest one request; MaxPending the local queue.
	BatchSize, MaxBatchBytes, MaxRequest, MaxPending int
	// TBA is the TTCB's T_TBA (results of an execution are available at
	// tstart+TBA), in TTCB time units; Start is the tstart of epoch 0 and
	// Window the base gap between one epoch's results and the next
	// epoch's tstart. All three must be equal at every replica (cluster
	// configuration): epoch tstarts are computed from them and the agreed
	// results alone.
	TBA, Start, Window uint64
	// Retention is a lower bound on how long the TTCB keeps a result
	// after tstart+TBA (ttcb Config.Retention / ModelParams.Retention).
	// It lets a replica tell "nobody proposed to this execution by tstart"
	// from "the result expired": the TTCB answers both with ErrExpired.
	Retention uint64
	// MaxBackoff caps the doubling of the window after weak epochs
	// (fewer than f+1 executions decided): Window·2^MaxBackoff.
	MaxBackoff uint
	// Ahead is how many epochs beyond the current one PROPOSEs are
	// buffered for; Retain how many completed epochs' batches are kept to
	// answer FETCH. A replica that falls more than Retain epochs behind
	// the others (it was cut off that long) can no longer fetch what it
	// missed and must catch up by state transfer (smr checkpoints; not
	// implemented here).
	Ahead, Retain uint64
	// ModuleKeys, if set, are the public keys of the TTCB modules of
	// hosts 1..n (index NodeID−1): a result the local module withheld is
	// then taken from any one replica that relays it with a valid module
	// attestation; without them, from f+1 replicas reporting it alike.
	ModuleKeys []ed25519.PublicKey
}

// DefaultParams returns parameters for the TTCB model's timing (T_TBA of
// 10 ticks); a real deployment sets TBA, Start and Window from the TTCB
// configuration in nanoseconds.
func DefaultParams(g core.Group, self core.NodeID, valid func([]byte) bool) Params {
	return Params{Group: g, Self: self, Valid: valid, BatchSize: 256, MaxBatchBytes: 4 << 20,
		MaxRequest: 64 << 10, MaxPending: 1 << 16, TBA: 10, Start: 40, Window: 20, MaxBackoff: 10,
		Ahead: 4, Retain: 256, Retention: ttcb.DefaultModelParams().Retention}
}

// Check validates the parameters, refusing n < 2f+1.
func (p Params) Check() error {
	switch {
	case p.Group.N() < core.HybridSMR.MinN(p.Group.F()):
		return fmt.Errorf("hybrid: %w: the ordering engine needs n ≥ 2f+1, have %s", core.ErrResilience, p.Group)
	case p.Group.N() > ttcb.MaxElist || p.Group.N() >= 1<<11:
		return fmt.Errorf("hybrid: n=%d > %d entities per TTCB agreement", p.Group.N(), ttcb.MaxElist)
	case p.ModuleKeys != nil && len(p.ModuleKeys) != p.Group.N():
		return fmt.Errorf("hybrid: %d module keys for n=%d", len(p.ModuleKeys), p.Group.N())
	case !p.Group.Contains(p.Self):
		return fmt.Errorf("hybrid: self %d not in %s", p.Self, p.Group)
	case p.Valid == nil:
		return errors.New("hybrid: Valid is required")
	case p.BatchSize < 1 || p.MaxRequest < 1 || p.MaxPending < 1 || p.MaxBatchBytes < p.MaxRequest:
		return errors.New("hybrid: BatchSize, MaxRequest, MaxPending must be positive and MaxBatchBytes ≥ MaxRequest")
	case p.TBA == 0 || p.Window == 0 || p.Retention == 0 || p.MaxBackoff > 30 || p.Ahead < 1 || p.Retain < 1:
		return errors.New("hybrid: TBA, Window, Ahead, Retain must be positive and MaxBackoff ≤ 30")
	}
	return nil
}

// Digest identifies a request.
type Digest [32]byte

func requestDigest(r []byte) Digest { return sha256.Sum256(r) }

// BatchHash is the value replicas propose to the TTCB for owner's batch of
// an epoch: bound to the engine's instance, the epoch and the owner.
func BatchHash(root core.InstanceID, epoch uint64, owner core.NodeID, requests [][]byte) ttcb.Value {
	var hdr [12]byte
	binary.BigEndian.PutUint64(hdr[:8], epoch)
	binary.BigEndian.PutUint32(hdr[8:], uint32(owner))
	fields := append([][]byte{[]byte(root), hdr[:]}, requests...)
	return hashOf("maftia/hybrid/batch/v1", fields...)
}

type queued struct {
	req    []byte
	digest Digest
}

// epoch is the state of one epoch at one replica.
type epoch struct {
	num, tstart uint64
	batches     []([][]byte) // per owner (index NodeID-1): the batch received, if valid
	has         []bool
	hashes      []ttcb.Value
	proposed    []bool
	results     []*ttcb.TBAResult
	nresults    int
	lateJoined  bool
	fetched     []bool
	// recovering: the epoch a restarted replica resumes at. It may have
	// proposed for it before it crashed, so it proposes nothing of its
	// own; it waits (TTCB timestamps, one tick apart) until TTCB time is
	// past tstart and then joins every execution late.
	recovering bool
	// Results relayed by other replicas (the local module withheld ours):
	// asked[j] once asked; votes[j] maps a result to who reported it.
	asked []bool
	votes []map[ttcb.TBAResult]map[core.NodeID]bool
	// withheld[j] holds the modules' attestations that they withhold the
	// result of execution j (by module); all n: no result exists.
	withheld []map[uint32]ttcb.TBAResult
}

// Ops counts work, for benchmarks and metrics.
type Ops struct {
	Epochs, WeakEpochs, Proposals, LateProposals, Fetches, Batches, Relayed, AllWithheld uint64
}

// Engine is the hybrid ordering engine (n ≥ 2f+1) at one replica: a
// core.Protocol rooted at root that takes core.Input{Value: []byte} client
// requests and delivers *wire.Batch values with consecutive sequence
// numbers from 1 (the smr Engine contract). See the package documentation.
type Engine struct {
	p    Params
	root core.InstanceID

	pending   []queued
	inPending map[Digest]bool

	cur     *epoch
	weak    uint // consecutive weak epochs
	seq     uint64
	future  map[uint64]map[core.NodeID][][]byte
	kept    map[uint64][][][]byte // completed epoch → decided batch per owner (nil: none)
	answers map[uint64]map[[2]core.NodeID]int
	ops     Ops
	lim     Limits
	resume  *Resume // set by Recover: where the first event resumes
	// keptRes holds completed epochs' TTCB results (for RESULT answers,
	// as kept holds their batches); wants the RESULT_QUERYs this replica
	// could not answer yet (epoch → asker, owner), at most Ahead epochs
	// ahead.
	keptRes map[uint64][]ttcb.TBAResult
	keptWH  map[uint64][]map[uint32]ttcb.TBAResult // completed epochs' withholding attestations
	wants   map[uint64]map[[2]core.NodeID]bool
	resAns  map[uint64]map[[2]core.NodeID]int
}

// New creates the engine rooted at instance root (smr.EngineInstance
// when it runs under smr.Replica). Epoch 0 starts at the first event.
func New(root core.InstanceID, p Params) (*Engine, error) {
	if err := p.Check(); err != nil {
		return nil, err
	}
	return &Engine{p: p, root: root, inPending: map[Digest]bool{},
		future: map[uint64]map[core.NodeID][][]byte{}, kept: map[uint64][][][]byte{},
		answers: map[uint64]map[[2]core.NodeID]int{},
		keptRes: map[uint64][]ttcb.TBAResult{}, keptWH: map[uint64][]map[uint32]ttcb.TBAResult{}, wants: map[uint64]map[[2]core.NodeID]bool{},
		resAns: map[uint64]map[[2]core.NodeID]int{},
		lim:    Limits{MaxValue: 0, MaxRequest: p.MaxRequest, MaxRequests: p.BatchSize, MaxN: p.Group.N()}}, nil
}

// Ops returns the work counters.
func (e *Engine) Ops() Ops { return e.ops }

// Epoch is the number of the epoch in progress.
func (e *Engine) Epoch() uint64 {
	if e.cur == nil {
		return 0
	}
	return e.cur.num
}

// Pending is the number of queued requests not yet ordered.
func (e *Engine) Pending() int { return len(e.pending) }

// Precheck decodes a message off the stepping goroutine.
func (e *Engine) Precheck(m core.Message) (any, error) {
	msg, err := Decode(m.Payload, e.lim)
	if err != nil {
		return nil, &core.Evidence{Accused: m.From, Kind: core.Malformed, Instance: m.Instance, Detail: err.Error()}
	}
	return msg, nil
}

// Step applies one event.
func (e *Engine) Step(ev core.Event, out *core.Output) error {
	if in, ok := ev.(core.Input); ok {
		err := e.submit(in, out)
		if e.cur == nil {
			e.begin(out)
		}
		return err
	}
	if e.cur == nil {
		e.begin(out)
	}
	switch x := ev.(type) {
	case core.Message:
		e.receive(x, out)
		return nil
	case core.ServiceReply:
		return e.reply(x, out)
	case core.TimerFired:
		if x.Instance == e.root && x.Timer == recoverTimer && e.cur.recovering {
			e.askTime(out)
		}
		return nil
	}
	return fmt.Errorf("hybrid: engine: unexpected event %s", ev)
}

func (e *Engine) submit(in core.Input, out *core.Output) error {
	r, ok := in.Value.([]byte)
	if !ok {
		return fmt.Errorf("hybrid: engine: input is %T, want []byte", in.Value)
	}
	if len(r) > e.p.MaxRequest || !e.p.Valid(r) || len(e.pending) >= e.p.MaxPending {
		return nil // refused locally; the client retries
	}
	d := requestDigest(r)
	if e.inPending[d] {
		return nil
	}
	e.inPending[d] = true
	e.pending = append(e.pending, queued{req: r, digest: d})
	return nil
}

// start begins epoch num with the given tstart: "every replica sends
// PROPOSE(e, B) with its pending requests to all, and proposes H(B) for
// the execution it owns".
func (e *Engine) start(num, tstart uint64, out *core.Output) {
	n := e.p.Group.N()
	e.cur = &epoch{num: num, tstart: tstart, batches: make([][][]byte, n), has: make([]bool, n),
		hashes: make([]ttcb.Value, n), proposed: make([]bool, n), results: make([]*ttcb.TBAResult, n),
		fetched: make([]bool, n)}
	e.ops.Epochs++
	var batch [][]byte
	size := 0
	for _, q := range e.pending {
		if len(batch) == e.p.BatchSize || size+len(q.req) > e.p.MaxBatchBytes {
			break
		}
		batch = append(batch, q.req)
		size += len(q.req)
	}
	out.Broadcast(e.root, Encode(&Message{Kind: KindPropose, Epoch: num, Owner: e.p.Self, Requests: batch}))
	e.onPropose(e.p.Self, num, batch, out)
	buffered := e.future[num]
	delete(e.future, num)
	for _, id := range e.p.Group.Members() { // deterministic order
		if b, ok := buffered[id]; ok {
			e.onPropose(id, num, b, out)
		}
	}
}

func (e *Engine) receive(m core.Message, out *core.Output) {
	if !e.p.Group.Contains(m.From) || m.Instance != e.root {
		return
	}
	msg, ok := m.Checked.(*Message)
	if !ok {
		var err error
		if msg, err = Decode(m.Payload, e.lim); err != nil {
			out.Accuse(m.From, core.Malformed, e.root, "%v", err)
			return
		}
	}
	switch msg.Kind {
	case KindPropose:
		if msg.Owner != m.From {
			out.Accuse(m.From, core.Unexpected, e.root, "PROPOSE for owner %d", msg.Owner)
			return
		}
		e.onPropose(m.From, msg.Epoch, msg.Requests, out)
	case KindFetch:
		e.onFetch(m.From, msg.Epoch, msg.Owner, out)
	case KindBatch:
		e.onBatch(msg.Epoch, msg.Owner, msg.Requests, out)
	case KindResultQ:
		e.onResultQuery(m.From, msg.Epoch, msg.Owner, out)
	case KindResult:
		e.onResult(m.From, msg, out)
	default:
		out.Accuse(m.From, core.Unexpected, e.root, "%s in the ordering engine", msg.Kind)
	}
}

// validBatch is the deterministic admission check every correct replica
// applies before voting for a batch (integrity).
func (e *Engine) validBatch(b [][]byte) bool {
	if len(b) > e.p.BatchSize {
		return false
	}
	size := 0
	seen := make(map[Digest]bool, len(b))
	for _, r := range b {
		size += len(r)
		d := requestDigest(r)
		if seen[d] || len(r) > e.p.MaxRequest || !e.p.Valid(r) {
			return false
		}
		seen[d] = true
	}
	return size <= e.p.MaxBatchBytes
}

// upon PROPOSE(e, B) from owner j, the first: if B is valid, propose
// H(e, j, B) to the TBA (elist starting at j, tstart_e, majority) and ask
// for its result.
func (e *Engine) onPropose(from core.NodeID, num uint64, b [][]byte, out *core.Output) {
	c := e.cur
	switch {
	case num < c.num:
		return // late: the epoch is decided; FETCH covers what we miss
	case num > c.num:
		if num-c.num > e.p.Ahead {
			return
		}
		fb := e.future[num]
		if fb == nil {
			fb = map[core.NodeID][][]byte{}
			e.future[num] = fb
		}
		if _, dup := fb[from]; !dup {
			fb[from] = b
		}
		return
	}
	i := from - 1
	h := BatchHash(e.root, num, from, b)
	if c.has[i] {
		if c.hashes[i] != h {
			out.Accuse(from, core.Equivocation, e.root, "two batches for epoch %d", num)
		}
		return
	}
	if !e.validBatch(b) {
		out.Accuse(from, core.InvalidProof, e.root, "batch for epoch %d fails the request predicate or bounds", num)
		return
	}
	c.batches[i], c.has[i], c.hashes[i] = b, true, h
	if !c.proposed[i] {
		c.proposed[i] = true
		e.ops.Proposals++
		proposeAndDecide(out, e.root, e.tag(num, from), rotated(e.p.Group, from), c.tstart, ttcb.DecisionMajority, h)
	}
	e.tryComplete(out)
}

// Tags of the engine's TTCB requests: epoch, owner and kind (0 propose,
// 1 decide, 2 timestamp).
const (
	tagPropose, tagDecide, tagTime = 0, 1, 2
)

// maxAnswers bounds the BATCH answers to one replica's FETCHes for one
// batch (restarts ask again).
const maxAnswers = 4

func (e *Engine) tag(num uint64, owner core.NodeID) uint64 { return num<<13 | uint64(owner)<<2 }

func (e *Engine) reply(r core.ServiceReply, out *core.Output) error {
	kind := r.Tag & 3
	if kind == tagPropose || r.Instance != e.root {
		return nil // propose acknowledgements and refusals (late proposals) need no action
	}
	num, owner := r.Tag>>13, core.NodeID(r.Tag>>2&(1<<11-1))
	c := e.cur
	if owner == 0 && kind == tagTime {
		if num != c.num || !c.recovering {
			return nil
		}
		if ts, ok := r.Reply.(ttcb.Timestamp); ok && ts.Time >= c.tstart {
			c.recovering = false
			e.joinLate(out)
			return nil
		}
		// Before tstart, or the TTCB could not answer yet: ask again a
		// tick later.
		out.SetTimer(e.root, recoverTimer, 1)
		return nil
	}
	if num != c.num || !e.p.Group.Contains(owner) || c.results[owner-1] != nil {
		return nil
	}
	var res ttcb.TBAResult
	switch x := r.Reply.(type) {
	case ttcb.TBAResult:
		if kind != tagDecide {
			return nil
		}
		if x.Withheld {
			// Our module had a timing failure in this execution: keep
			// its attestation (others may need it to conclude that no
			// module has the result) and ask the others.
			e.addWithheld(owner, x, out)
			e.askResult(owner, out)
			return nil
		}
		res = x
	case ttcb.Refused:
		if kind == tagDecide && errors.Is(x.Err, ttcb.ErrExpired) {
			// Either nobody proposed by tstart (no execution exists) or
			// the result expired. Ask the time to tell them apart.
			out.Request(e.root, ttcb.ServiceName, e.tag(num, owner)|tagTime, ttcb.GetTimestamp{})
			return nil
		}
		if kind != tagDecide {
			return nil
		}
		// The local module withheld the result (a timing failure of its
		// own in this execution, a restart, …): every module that answers
		// gives the same result, so ask the other replicas for theirs.
		e.askResult(owner, out)
		return nil
	case ttcb.Timestamp:
		// The refusal was computed before this timestamp; if the result
		// could not have expired yet, the execution never existed: nobody
		// proposed by tstart, so it decided nothing.
		if kind != tagTime {
			return nil
		}
		if x.Time >= c.tstart+e.p.TBA+e.p.Retention {
			// The result expired here: ask the other replicas for it.
			e.askResult(owner, out)
			return nil
		}
	default:
		return nil
	}
	e.setResult(owner, res, out)
	// The first result of the epoch means TTCB time has passed tstart:
	// join every execution we have not proposed to (the TTCB refuses the
	// late proposals but answers their results).
	e.joinLate(out)
	e.tryComplete(out)
	return nil
}

// joinLate proposes (late, so the TTCB refuses the value but answers the
// result) to every execution of the current epoch not yet proposed to.
// Called only once TTCB time is known to be past tstart: the first result
// of the epoch, or a timestamp while recovering.
func (e *Engine) joinLate(out *core.Output) {
	c := e.cur
	if c.lateJoined {
		return
	}
	c.lateJoined = true
	for _, j := range e.p.Group.Members() {
		if !c.proposed[j-1] {
			c.proposed[j-1] = true
			e.ops.LateProposals++
			proposeAndDecide(out, e.root, e.tag(c.num, j), rotated(e.p.Group, j), c.tstart, ttcb.DecisionMajority, ttcb.Value{})
		}
	}
}

// tryComplete delivers the epoch once every execution's result is known
// and every decided batch is at hand, fetching missing ones from the
// replicas that proposed them (proposed-ok: at least f+1, so one correct).
func (e *Engine) tryComplete(out *core.Output) {
	c := e.cur
	if c.nresults < e.p.Group.N() {
		return
	}
	missing := false
	decided := 0
	for _, j := range e.p.Group.Members() {
		res := c.results[j-1]
		if !res.Decided {
			continue
		}
		decided++
		if c.has[j-1] && c.hashes[j-1] == res.Value {
			continue
		}
		missing = true
		if !c.fetched[j-1] {
			c.fetched[j-1] = true
			e.ops.Fetches++
			payload := Encode(&Message{Kind: KindFetch, Epoch: c.num, Owner: j})
			for _, h := range members(rotated(e.p.Group, j), res.ProposedOK) {
				if h != e.p.Self {
					out.SendTo(h, e.root, payload)
				}
			}
		}
	}
	if missing {
		return
	}
	// Deliver: the decided batches in owner order, duplicates removed.
	keep := make([][][]byte, e.p.Group.N())
	var reqs [][]byte
	seen := map[Digest]bool{}
	for _, j := range e.p.Group.Members() {
		if !c.results[j-1].Decided {
			continue
		}
		keep[j-1] = c.batches[j-1]
		if keep[j-1] == nil {
			keep[j-1] = [][]byte{} // decided and empty: still answerable
		}
		for _, r := range c.batches[j-1] {
			d := requestDigest(r)
			if !seen[d] {
				seen[d] = true
				reqs = append(reqs, r)
			}
		}
	}
	if len(reqs) > 0 {
		e.seq++
		e.ops.Batches++
		out.Deliver(e.root, &wire.Batch{Seq: e.seq, Requests: reqs})
		e.pending = slices.DeleteFunc(e.pending, func(q queued) bool {
			if seen[q.digest] {
				delete(e.inPending, q.digest)
				return true
			}
			return false
		})
	}
	e.kept[c.num] = keep
	res := make([]ttcb.TBAResult, len(c.results))
	for i, r := range c.results {
		res[i] = *r
	}
	e.keptRes[c.num] = res
	if c.withheld != nil {
		e.keptWH[c.num] = c.withheld
	}
	delete(e.wants, c.num)
	if c.num >= e.p.Retain {
		delete(e.kept, c.num-e.p.Retain)
		delete(e.answers, c.num-e.p.Retain)
		delete(e.keptRes, c.num-e.p.Retain)
		delete(e.keptWH, c.num-e.p.Retain)
		delete(e.resAns, c.num-e.p.Retain)
	}
	// The schedule: tstart_{e+1} = tstart_e + T_TBA + Window·2^weak,
	// where weak counts consecutive epochs with fewer than f+1 decided
	// executions (the TTCB saw too few timely proposals: a timing
	// failure of the payload system, so the next epoch gets more time).
	if decided < e.p.Group.F()+1 {
		e.weak = min(e.weak+1, e.p.MaxBackoff)
		e.ops.WeakEpochs++
	} else {
		e.weak = 0
	}
	next := Resume{Epoch: c.num + 1, TStart: c.tstart + e.p.TBA + e.p.Window<<e.weak, Weak: e.weak, Seq: e.seq}
	// Durable with the delivery of this step (the runtime commits a
	// step's records together): a restarted replica resumes here.
	out.PersistRecord(e.root, ResumeKey, next.encode())
	e.start(next.Epoch, next.TStart, out)
}

// upon FETCH(e, j) from k: answer with the batch of owner j we hold
// (decided, or proposed in the current epoch), at most maxAnswers times
// per (e, j, k): a replica that restarted asks again for what it asked
// before it crashed, while a Byzantine one cannot make us send a batch
// more than a few times.
func (e *Engine) onFetch(from core.NodeID, num uint64, owner core.NodeID, out *core.Output) {
	var b [][]byte
	switch {
	case e.kept[num] != nil && e.kept[num][owner-1] != nil:
		b = e.kept[num][owner-1]
	case num == e.cur.num && e.cur.has[owner-1]:
		b = e.cur.batches[owner-1]
	default:
		return
	}
	a := e.answers[num]
	if a == nil {
		a = map[[2]core.NodeID]int{}
		e.answers[num] = a
	}
	if a[[2]core.NodeID{from, owner}] >= maxAnswers {
		return
	}
	a[[2]core.NodeID{from, owner}]++
	out.SendTo(from, e.root, Encode(&Message{Kind: KindBatch, Epoch: num, Owner: owner, Requests: b}))
}

// upon BATCH(e, j, B) whose hash the TBA decided for (e, j): keep it.
func (e *Engine) onBatch(num uint64, owner core.NodeID, b [][]byte, out *core.Output) {
	c := e.cur
	i := owner - 1
	if num != c.num || c.results[i] == nil || !c.results[i].Decided || (c.has[i] && c.hashes[i] == c.results[i].Value) {
		return
	}
	if h := BatchHash(e.root, num, owner, b); h == c.results[i].Value {
		c.batches[i], c.has[i], c.hashes[i] = b, true, h
		e.tryComplete(out)
	}
}
