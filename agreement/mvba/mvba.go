package mvba

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/maftia/maftia/agreement/aba"
	"github.com/maftia/maftia/agreement/internal/tcoin"
	"github.com/maftia/maftia/broadcast/rbc"
	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/crypto/coin"
	"github.com/maftia/maftia/crypto/tsig"
	"github.com/maftia/maftia/wire"
)

// Params configures one agreement instance at one replica.
type Params struct {
	Group core.Group
	Self  core.NodeID
	// Coin is the group's threshold coin (threshold f+1), Key this
	// replica's share; they elect candidates and drive the ABAs.
	Coin *coin.Coin
	Key  *tsig.SecretShare
	// Valid is the external-validity predicate: pure and deterministic,
	// the same at every correct replica.
	Valid func(value []byte) bool
	// MaxValue bounds a proposal in bytes.
	MaxValue int
	// MaxIterationsAhead bounds how many iterations beyond the current one
	// a replica keeps votes, coin shares and ABA instances for.
	MaxIterationsAhead uint64
	// ABAFixedCoins are the fixed coins of the first rounds of every
	// iteration's ABA (aba.Params.FixedCoins). DefaultParams sets [true,
	// false]: when the candidate's proposal is out every correct replica
	// proposes 1, and the ABA then decides in its first round without a
	// coin; when nobody holds it, 0 in its second round, again without.
	ABAFixedCoins []bool
	// FixedFirstCandidate makes iteration 1's candidate a fixed function
	// of the instance ID (H(instance) mod n + 1, so it rotates over the
	// instances) instead of a threshold coin. Agreement and validity do
	// not depend on how the candidate is drawn, only on all correct
	// replicas drawing the same one; a predictable candidate lets the
	// adversary make iteration 1 fail (a Byzantine or delayed candidate),
	// after which every iteration draws by the coin as before.
	// DefaultParams sets it (with ABAFixedCoins [true, false] an iteration
	// that fails unanimously also ends without a coin).
	FixedFirstCandidate bool

	// UnsafeAcceptInvalid skips the validity predicate on received
	// proposals. It exists only for the deliberately broken variant the
	// simulator tests must catch; production code leaves it false.
	UnsafeAcceptInvalid bool
}

// DefaultParams allows 1 MiB proposals and keeps 8 iterations ahead.
func DefaultParams(g core.Group, self core.NodeID, c *coin.Coin, key *tsig.SecretShare, valid func([]byte) bool) Params {
	return Params{Group: g, Self: self, Coin: c, Key: key, Valid: valid, MaxValue: 1 << 20, MaxIterationsAhead: 8,
		ABAFixedCoins: []bool{true, false}, FixedFirstCandidate: true}
}

// abaParams are the parameters of the iterations' binary agreements.
func (p Params) abaParams() aba.Params {
	ap := aba.DefaultParams(p.Group, p.Self, p.Coin, p.Key)
	ap.FixedCoins = p.ABAFixedCoins
	return ap
}

// Check validates the parameters, refusing groups below n ≥ 3f+1.
func (p Params) Check() error {
	if p.Valid == nil {
		return errors.New("mvba: validity predicate missing")
	}
	if p.MaxValue <= 0 || p.MaxIterationsAhead < 1 {
		return errors.New("mvba: MaxValue and MaxIterationsAhead must be positive")
	}
	if err := p.abaParams().Check(); err != nil {
		return fmt.Errorf("mvba: %w", err)
	}
	return nil
}

// Decision is what an instance delivers: the value, the replica that
// proposed it and the iteration that chose it (0 if this replica decided on
// f+1 DECIDE messages).
type Decision struct {
	Value     []byte
	Proposer  core.NodeID
	Iteration uint64
}

func (d Decision) String() string {
	v := d.Value
	if len(v) > 24 {
		return fmt.Sprintf("decide %q…(%dB) from %d iter %d", v[:16], len(v), d.Proposer, d.Iteration)
	}
	return fmt.Sprintf("decide %q from %d iter %d", v, d.Proposer, d.Iteration)
}

type iteration struct {
	l          uint64
	toss       *tcoin.Toss
	released   bool
	candidate  core.NodeID // 0 until the coin is known
	votes      []uint8     // per sender: 0 none, else 1+vote
	nvotes     int
	nvote1     int
	sentVote   bool
	abaStarted bool
	abaDecided bool
	abaValue   bool
}

type decideKey struct {
	proposer core.NodeID
	digest   [32]byte
}

// MVBA is one multivalued agreement instance at one replica.
type MVBA struct {
	inst core.InstanceID
	p    Params

	props      []*rbc.RBC
	proposals  [][]byte
	have       []bool
	ndelivered int
	proposed   bool

	abas    *core.Mux
	abaRefs map[uint64]*aba.ABA
	iter    uint64 // 0 until n−f proposals are in
	iters   map[uint64]*iteration

	decided   bool
	decision  Decision
	sentDec   bool
	halted    bool
	decideOf  []decideKey
	decideSet []bool
	decides   map[decideKey]int
	pending   *decideKey // f+1 DECIDEs for a proposal not yet delivered

	scratch core.Output
	ops     tcoin.Ops
}

// New creates an instance; a replica proposes with core.Input{Value: []byte}.
func New(inst core.InstanceID, p Params) (*MVBA, error) {
	if err := p.Check(); err != nil {
		return nil, err
	}
	n := p.Group.N()
	m := &MVBA{inst: inst, p: p, props: make([]*rbc.RBC, n), proposals: make([][]byte, n), have: make([]bool, n),
		abaRefs: map[uint64]*aba.ABA{}, iters: map[uint64]*iteration{},
		decideOf: make([]decideKey, n), decideSet: make([]bool, n), decides: map[decideKey]int{}}
	for j := range n {
		rp := rbc.DefaultParams(p.Group, p.Self, core.NodeID(j+1))
		rp.MaxPayload = p.MaxValue
		r, err := rbc.New(inst.ChildN("prop", uint64(j+1)), rp)
		if err != nil {
			return nil, err
		}
		m.props[j] = r
	}
	m.abas = core.NewMux(inst.Depth()+1, m.newABA, 16*int(p.MaxIterationsAhead), 64<<10)
	return m, nil
}

// newABA is the factory of the per-iteration binary agreements
// ("mvba:7/aba:l"), bounded to the iteration window.
func (m *MVBA) newABA(id core.InstanceID) (core.Protocol, error) {
	name, l, ok := id.Last()
	if id.Parent() != m.inst || name != "aba" || !ok || l < 1 || l > max(m.iter, 1)+m.p.MaxIterationsAhead {
		return nil, core.ErrNoInstance
	}
	a, err := aba.New(id, m.p.abaParams())
	if err != nil {
		return nil, err
	}
	m.abaRefs[l] = a
	return a, nil
}

// Finished reports that the instance decided and saw 2f+1 matching
// DECIDEs; the host may then drop it and its children.
func (m *MVBA) Finished() bool { return m.halted }

// Decided returns the decision, if any.
func (m *MVBA) Decided() (Decision, bool) { return m.decision, m.decided }

// Iteration is the current iteration (0 before the loop started).
func (m *MVBA) Iteration() uint64 { return m.iter }

// Ops returns the cryptographic operations of this replica, the ABAs'
// included.
func (m *MVBA) Ops() tcoin.Ops {
	o := m.ops
	for _, a := range m.abaRefs {
		o.Add(a.Ops())
	}
	return o
}

// CoinName names the coin that elects iteration l's candidate.
func CoinName(inst core.InstanceID, l uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], l)
	return coin.Name([]byte("maftia/mvba/candidate/v1"), []byte(inst), b[:])
}

func digestOf(inst core.InstanceID, proposer core.NodeID, v []byte) [32]byte {
	h := sha256.New()
	var l [8]byte
	h.Write([]byte("maftia/mvba/decide/v1"))
	for _, part := range [][]byte{[]byte(inst), binary.BigEndian.AppendUint32(nil, uint32(proposer)), v} {
		binary.BigEndian.PutUint64(l[:], uint64(len(part)))
		h.Write(l[:])
		h.Write(part)
	}
	var d [32]byte
	h.Sum(d[:0])
	return d
}

// Encode marshals an MVBA message.
func Encode(m *wire.MVBA) []byte {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("mvba: marshal: %v", err))
	}
	return b
}

// Decode parses and validates an MVBA message from the network.
func Decode(b []byte) (*wire.MVBA, error) {
	var m wire.MVBA
	if err := proto.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: mvba: %v", wire.ErrMalformed, err)
	}
	ok := false
	switch m.Kind {
	case wire.MVBA_VOTE:
		ok = m.Vote <= 1 && len(m.Share) == 0 && len(m.Value) == 0 && m.Proposer == 0
	case wire.MVBA_COIN:
		ok = m.Vote == 0 && len(m.Share) == tsig.ShareSize && len(m.Value) == 0 && m.Proposer == 0
	case wire.MVBA_DECIDE:
		ok = m.Vote == 0 && len(m.Share) == 0 && len(m.Value) == sha256.Size && m.Proposer >= 1 && m.Proposer <= core.MaxGroupSize
	}
	if !ok {
		return nil, fmt.Errorf("%w: mvba: bad %s message", wire.ErrMalformed, m.Kind)
	}
	return &m, nil
}

// checkedShare is Precheck's result for a COIN message: a verified share.
type checkedShare struct {
	msg   *wire.MVBA
	share coin.Share
}

// Precheck verifies coin shares (the MVBA's and its ABAs') off the stepping
// goroutine (DESIGN §3); other messages are checked inline by Step. It is
// pure: it reads only the instance ID and the coin key.
func (m *MVBA) Precheck(msg core.Message) (any, error) {
	if msg.Instance.Parent() != m.inst {
		return nil, nil
	}
	name, l, _ := msg.Instance.Last()
	switch name {
	case "aba":
		return aba.Precheck(m.p.Coin, m.p.ABAFixedCoins, msg)
	case "coin":
		if l == 1 && m.p.FixedFirstCandidate {
			return nil, errFixedCandidateShare
		}
		d, err := Decode(msg.Payload)
		if err != nil || d.Kind != wire.MVBA_COIN {
			return nil, &core.Evidence{Accused: msg.From, Kind: core.Malformed, Instance: msg.Instance, Detail: "bad COIN"}
		}
		s, err := tcoin.Verify(m.p.Coin, CoinName(m.inst, l), msg.From, d.Share)
		if err != nil {
			return nil, &core.Evidence{Accused: msg.From, Kind: core.InvalidProof, Instance: msg.Instance, Detail: err.Error()}
		}
		return &checkedShare{msg: d, share: s}, nil
	}
	return nil, nil
}

// Step applies one event.
func (m *MVBA) Step(ev core.Event, out *core.Output) error {
	switch e := ev.(type) {
	case core.Input:
		return m.propose(e, out)
	case core.Message:
		if m.halted || !m.p.Group.Contains(e.From) {
			return nil
		}
		return m.receive(e, out)
	default:
		return fmt.Errorf("mvba: unexpected event %s", ev)
	}
}

// propose(v): r-broadcast v on "prop:self".
func (m *MVBA) propose(in core.Input, out *core.Output) error {
	v, ok := in.Value.([]byte)
	if !ok {
		return fmt.Errorf("mvba: input value is %T, want []byte", in.Value)
	}
	if m.proposed {
		return fmt.Errorf("mvba: second proposal for %s", m.inst)
	}
	if !m.p.Valid(v) {
		return fmt.Errorf("mvba: own proposal fails the validity predicate")
	}
	if m.halted {
		return nil
	}
	m.proposed = true
	self := m.inst.ChildN("prop", uint64(m.p.Self))
	if err := m.child(m.props[m.p.Self-1], core.Input{Instance: self, Value: v}, out); err != nil {
		return err
	}
	m.advance(out)
	return nil
}

// child steps a child core and handles its deliveries.
func (m *MVBA) child(c core.Protocol, ev core.Event, out *core.Output) error {
	m.scratch.Reset()
	if err := c.Step(ev, &m.scratch); err != nil {
		return err
	}
	out.Persist = append(out.Persist, m.scratch.Persist...)
	out.Sends = append(out.Sends, m.scratch.Sends...)
	out.Evidence = append(out.Evidence, m.scratch.Evidence...)
	ds := append([]core.Delivery(nil), m.scratch.Deliveries...)
	for _, d := range ds {
		name, idx, _ := d.Instance.Last()
		switch name {
		case "prop":
			m.onProposal(core.NodeID(idx), d.Value.([]byte), out)
		case "aba":
			m.onABA(idx, d.Value.(aba.Decision))
		}
	}
	return nil
}

func (m *MVBA) receive(e core.Message, out *core.Output) error {
	if e.Instance == m.inst {
		m.onDecide(e, out)
		return nil
	}
	if e.Instance.Parent() != m.inst {
		return nil
	}
	name, idx, ok := e.Instance.Last()
	if !ok {
		out.Accuse(e.From, core.Malformed, e.Instance, "instance without index")
		return nil
	}
	switch name {
	case "prop":
		if idx < 1 || idx > uint64(m.p.Group.N()) {
			out.Accuse(e.From, core.Malformed, e.Instance, "no such proposer")
			return nil
		}
		if err := m.child(m.props[idx-1], e, out); err != nil {
			return err
		}
	case "aba":
		if err := m.child(m.abas, e, out); err != nil {
			return err
		}
	case "vote", "coin":
		m.onIterationMsg(e, name, idx, out)
	default:
		out.Accuse(e.From, core.Malformed, e.Instance, "unknown child")
		return nil
	}
	m.advance(out)
	m.tryPending(out)
	return nil
}

// upon r-delivering v_j from prop:j: if Valid(v_j), keep it.
func (m *MVBA) onProposal(j core.NodeID, v []byte, out *core.Output) {
	if !m.p.UnsafeAcceptInvalid && !m.p.Valid(v) {
		out.Accuse(j, core.InvalidProof, m.inst.ChildN("prop", uint64(j)), "proposal fails the validity predicate")
		return
	}
	if !m.have[j-1] {
		m.have[j-1], m.proposals[j-1] = true, v
		m.ndelivered++
	}
}

func (m *MVBA) onABA(l uint64, d aba.Decision) {
	if it := m.iteration(l); it != nil {
		it.abaDecided, it.abaValue = true, d.Value
	}
}

// iteration returns the state of iteration l if it lies in the window.
func (m *MVBA) iteration(l uint64) *iteration {
	lo := max(m.iter, 1)
	if l < lo || l > lo+m.p.MaxIterationsAhead {
		return nil
	}
	if it, ok := m.iters[l]; ok {
		return it
	}
	n := m.p.Group.N()
	it := &iteration{l: l, toss: tcoin.New(m.p.Coin, CoinName(m.inst, l), n), votes: make([]uint8, n)}
	m.iters[l] = it
	return it
}

func (m *MVBA) onIterationMsg(e core.Message, name string, l uint64, out *core.Output) {
	var msg *wire.MVBA
	chk, prechecked := e.Checked.(*checkedShare)
	if prechecked && chk != nil {
		msg = chk.msg
	} else {
		var err error
		if msg, err = Decode(e.Payload); err != nil {
			out.Accuse(e.From, core.Malformed, e.Instance, "%v", err)
			return
		}
	}
	if (name == "vote") != (msg.Kind == wire.MVBA_VOTE) || (name == "coin") != (msg.Kind == wire.MVBA_COIN) {
		out.Accuse(e.From, core.Malformed, e.Instance, "%s message on a %s instance", msg.Kind, name)
		return
	}
	it := m.iteration(l)
	if it == nil {
		return // past iteration, or too far ahead (bounded memory)
	}
	j := e.From - 1
	switch msg.Kind {
	case wire.MVBA_VOTE:
		switch v := uint8(msg.Vote) + 1; it.votes[j] {
		case 0:
			it.votes[j] = v
			it.nvotes++
			if v == 2 {
				it.nvote1++
			}
		case v:
		default:
			out.Accuse(e.From, core.Equivocation, e.Instance, "two votes")
		}
	case wire.MVBA_COIN:
		if it.toss.Have(e.From) || (l == 1 && m.p.FixedFirstCandidate) {
			return // (no coin is tossed for a fixed first candidate)
		}
		if prechecked && chk != nil {
			it.toss.Add(e.From, chk.share, true)
			return
		}
		s, err := tcoin.Decode(m.p.Coin, it.toss.Name(), e.From, msg.Share)
		if err != nil {
			out.Accuse(e.From, core.InvalidProof, e.Instance, "coin share: %v", err)
			return
		}
		it.toss.Add(e.From, s, false)
	}
}

// advance runs the current iteration's wait conditions until none fires.
func (m *MVBA) advance(out *core.Output) {
	g := m.p.Group
	// wait until n−f valid proposals are r-delivered (and we proposed)
	if m.iter == 0 {
		if !m.proposed || m.ndelivered < g.Quorum() {
			return
		}
		m.iter = 1
	}
	for !m.halted {
		it := m.iteration(m.iter)
		// iteration 1 with FixedFirstCandidate: c ← H(instance) mod n + 1
		if it.l == 1 && m.p.FixedFirstCandidate && it.candidate == 0 {
			it.released, it.candidate = true, firstCandidate(m.inst, g.N())
		}
		// release the coin share of iteration l (only now: after n−f
		// proposals, or after ABA_{l−1} decided 0)
		if !it.released {
			it.released = true
			m.ops.SharesSigned++
			sh := coin.ShareFor(m.p.Key, it.toss.Name())
			out.Broadcast(m.inst.ChildN("coin", it.l), Encode(&wire.MVBA{Kind: wire.MVBA_COIN, Share: sh.Marshal()}))
		}
		// candidate c ← coin_l mod n (f+1 valid shares)
		if it.candidate == 0 {
			v, ok := it.toss.Try(g.F()+1, m.inst.ChildN("coin", it.l), &m.ops, out)
			if !ok {
				return
			}
			it.candidate = core.NodeID(v.Mod(uint64(g.N())) + 1)
		}
		c := it.candidate
		// broadcast VOTE_l(1 if v_c is held, else 0)
		if !it.sentVote {
			it.sentVote = true
			var vote uint32
			if m.have[c-1] {
				vote = 1
			}
			out.Broadcast(m.inst.ChildN("vote", it.l), Encode(&wire.MVBA{Kind: wire.MVBA_VOTE, Vote: vote}))
		}
		// wait for n−f VOTEs; ABA_l input: 1 if v_c is held or f+1 replicas
		// (one correct, hence r-broadcast totality) hold it, else 0
		if !it.abaStarted {
			if it.nvotes < g.Quorum() {
				return
			}
			it.abaStarted = true
			if !it.abaDecided {
				in := m.have[c-1] || it.nvote1 >= g.F()+1
				if err := m.child(m.abas, core.Input{Instance: m.inst.ChildN("aba", it.l), Value: in}, out); err != nil {
					return // cannot happen: ABA_l is within the window
				}
			}
		}
		if !it.abaDecided {
			return
		}
		// ABA_l decided 1: wait for v_c and decide it; decided 0: next iteration
		if it.abaValue {
			if m.have[c-1] {
				m.decide(Decision{Value: m.proposals[c-1], Proposer: c, Iteration: it.l}, out)
			}
			return
		}
		delete(m.iters, m.iter)
		m.iter++
	}
}

// errFixedCandidateShare drops a coin share for iteration 1 when its
// candidate is fixed (nobody needs it) before any pairing.
var errFixedCandidateShare = errors.New("mvba: coin share for the fixed first candidate")

// firstCandidate is iteration 1's candidate under FixedFirstCandidate:
// H("maftia/mvba/first-candidate" ‖ instance) mod n + 1.
func firstCandidate(inst core.InstanceID, n int) core.NodeID {
	h := sha256.Sum256(append([]byte("maftia/mvba/first-candidate\x00"), inst...))
	return core.NodeID(binary.BigEndian.Uint64(h[:8])%uint64(n) + 1)
}

// decide(d): deliver once and broadcast DECIDE(proposer, digest).
func (m *MVBA) decide(d Decision, out *core.Output) {
	if !m.decided {
		m.decided, m.decision = true, d
		out.Deliver(m.inst, d)
	}
	if !m.sentDec {
		m.sentDec = true
		dg := digestOf(m.inst, d.Proposer, d.Value)
		out.Broadcast(m.inst, Encode(&wire.MVBA{Kind: wire.MVBA_DECIDE, Proposer: uint32(d.Proposer), Value: dg[:]}))
	}
	m.tryHalt()
}

// upon DECIDE(j, h) from f+1 replicas: decide v_j once r-delivered (a
// correct replica decided it); upon 2f+1 of them after deciding: halt —
// f+1 correct replicas sent DECIDE, so every correct replica will decide
// without us.
func (m *MVBA) onDecide(e core.Message, out *core.Output) {
	msg, err := Decode(e.Payload)
	if err != nil || msg.Kind != wire.MVBA_DECIDE || int(msg.Proposer) > m.p.Group.N() {
		out.Accuse(e.From, core.Malformed, e.Instance, "bad DECIDE")
		return
	}
	k := decideKey{proposer: core.NodeID(msg.Proposer), digest: [32]byte(msg.Value)}
	j := e.From - 1
	if m.decideSet[j] {
		if m.decideOf[j] != k {
			out.Accuse(e.From, core.Equivocation, e.Instance, "two DECIDEs")
		}
		return
	}
	m.decideSet[j], m.decideOf[j] = true, k
	m.decides[k]++
	if m.decides[k] >= m.p.Group.F()+1 && !m.decided {
		m.pending = &k
	}
	m.advance(out)
	m.tryPending(out)
	m.tryHalt()
}

func (m *MVBA) tryPending(out *core.Output) {
	if m.pending == nil || m.decided {
		return
	}
	j := m.pending.proposer
	if m.have[j-1] && digestOf(m.inst, j, m.proposals[j-1]) == m.pending.digest {
		m.decide(Decision{Value: m.proposals[j-1], Proposer: j}, out)
	}
}

func (m *MVBA) tryHalt() {
	if !m.decided || m.halted {
		return
	}
	k := decideKey{proposer: m.decision.Proposer, digest: digestOf(m.inst, m.decision.Proposer, m.decision.Value)}
	if m.decides[k] >= 2*m.p.Group.F()+1 {
		m.halted = true
		m.props, m.proposals, m.iters, m.abas = nil, nil, nil, nil
	}
}

// Describe renders a payload of instance inst for simulator traces.
func Describe(inst core.InstanceID, payload []byte) string {
	name, _, _ := inst.Last()
	switch name {
	case "prop":
		return rbc.Describe(payload)
	case "aba":
		return aba.Describe(payload)
	}
	m, err := Decode(payload)
	if err != nil {
		return fmt.Sprintf("garbage(%dB)", len(payload))
	}
	switch m.Kind {
	case wire.MVBA_VOTE:
		return fmt.Sprintf("VOTE %d", m.Vote)
	case wire.MVBA_DECIDE:
		return fmt.Sprintf("DECIDE from=%d h=%x", m.Proposer, m.Value[:4])
	}
	return "COIN"
}
