package aba

import (
	"encoding/binary"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/maftia/maftia/agreement/internal/tcoin"
	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/crypto/coin"
	"github.com/maftia/maftia/crypto/tsig"
	"github.com/maftia/maftia/wire"
)

// Params configures one agreement instance at one replica.
type Params struct {
	Group core.Group
	Self  core.NodeID
	// Coin is the group's threshold coin (threshold f+1) and Key this
	// replica's share of it.
	Coin *coin.Coin
	Key  *tsig.SecretShare
	// MaxRoundsAhead bounds how many rounds beyond its current one a
	// replica keeps messages for. Per sender and round at most 2 BVAL,
	// 1 AUX, 1 CONF and 1 COIN are kept, so a Byzantine sender can occupy
	// at most 5·MaxRoundsAhead slots (ATTACKS.md row 2).
	MaxRoundsAhead uint64

	// FixedCoins, if set, are the coins of rounds 1..len(FixedCoins)
	// (true = 1): "optimistic randomness" (Kursawe, suggested by Cachin
	// for HoneyBadgerBFT, amiller/HoneyBadgerBFT issue #63; poanetwork/hbbft
	// runs fixed-coin epochs). In those rounds no share is signed,
	// combined or verified. Agreement and validity never depend on the
	// coin's value, only on its being common (see the package doc); an
	// adversary that knows a fixed coin can at most keep a round from
	// deciding, and from the first threshold-coin round on the termination
	// argument is the usual one. mvba sets [true, false]: every correct
	// replica proposes 1 to an iteration's ABA whenever the candidate's
	// proposal is out, and then the ABA decides in round 1 with no coin at
	// all; when nobody holds it, all propose 0 and it decides in round 2.
	FixedCoins []bool

	// UnsafeCoin, if set, replaces the threshold coin of round r by its
	// result. It exists only for the deliberately broken variants the
	// simulator tests must catch (a coin that is a fixed bit or the
	// replica's own estimate); production code leaves it nil.
	UnsafeCoin func(round uint64, est uint8) uint8
	// UnsafeOwnVals decides on the replica's own AUX-phase vals instead of
	// the union of the CONF sets, and UnsafeSkipConf also skips the CONF
	// round (MMR with a threshold coin as HoneyBadgerBFT first had it):
	// broken variants for the steered-AUX test; production leaves them off.
	UnsafeOwnVals, UnsafeSkipConf bool
}

// DefaultParams keeps messages for up to 8 rounds ahead.
func DefaultParams(g core.Group, self core.NodeID, c *coin.Coin, key *tsig.SecretShare) Params {
	return Params{Group: g, Self: self, Coin: c, Key: key, MaxRoundsAhead: 8}
}

// Check validates the parameters, refusing groups below n ≥ 3f+1.
func (p Params) Check() error {
	if p.Group.N() < 3*p.Group.F()+1 {
		return fmt.Errorf("aba: %w: need n ≥ 3f+1, have %s", core.ErrResilience, p.Group)
	}
	if !p.Group.Contains(p.Self) {
		return fmt.Errorf("aba: self %d not in %s", p.Self, p.Group)
	}
	if p.Coin == nil || p.Key == nil {
		return errors.New("aba: coin key missing")
	}
	pk := p.Coin.PublicKey()
	if pk.N() != p.Group.N() || pk.Threshold() != p.Group.F()+1 {
		return fmt.Errorf("aba: coin key for n=%d threshold %d, group needs n=%d threshold %d",
			pk.N(), pk.Threshold(), p.Group.N(), p.Group.F()+1)
	}
	if p.Key.Index() != uint32(p.Self) {
		return fmt.Errorf("aba: key share %d is not replica %d's", p.Key.Index(), p.Self)
	}
	if p.MaxRoundsAhead < 1 {
		return errors.New("aba: MaxRoundsAhead must be at least 1")
	}
	return nil
}

// Decision is what an instance delivers: the agreed bit, the round this
// replica was in when it decided, and whether it decided on f+1 TERMs
// rather than on its own coin.
type Decision struct {
	Value  bool
	Round  uint64
	ByTerm bool
}

func (d Decision) String() string {
	b := 0
	if d.Value {
		b = 1
	}
	if d.ByTerm {
		return fmt.Sprintf("decide %d round %d (term)", b, d.Round)
	}
	return fmt.Sprintf("decide %d round %d", b, d.Round)
}

// Value sets: bit masks over {0, 1}.
const (
	has0 uint8 = 1
	has1 uint8 = 2
)

func single(set uint8) (uint8, bool) {
	switch set {
	case has0:
		return 0, true
	case has1:
		return 1, true
	}
	return 0, false
}

// round is the state of one round; per sender slots keep it bounded.
type round struct {
	r        uint64
	bval     [2][]bool
	nbval    [2]int
	sentBval [2]bool
	bin      uint8
	aux      []uint8 // 0: none, else 1+bit
	sentAux  bool
	conf     []uint8 // 0: none, else a value set
	sentConf bool
	auxSent  uint8 // the bit this replica sent in AUX
	confSent uint8 // the AUX-phase vals this replica sent in CONF
	vals     uint8 // union of the n−f CONF sets that released the coin
	released bool
	toss     *tcoin.Toss
}

// ABA is one binary agreement instance at one replica.
type ABA struct {
	inst core.InstanceID
	p    Params

	started  bool
	est      uint8
	cur      uint64
	rounds   map[uint64]*round
	decided  bool
	decision Decision
	halted   bool
	term     []uint8 // per sender: 0 none, else 1+bit
	nterm    [2]int
	ops      tcoin.Ops
}

// New creates an instance; it starts with core.Input{Value: bool}.
// Messages may arrive (and are kept) before the input.
func New(inst core.InstanceID, p Params) (*ABA, error) {
	if err := p.Check(); err != nil {
		return nil, err
	}
	a := &ABA{inst: inst, p: p, cur: 1, rounds: map[uint64]*round{}, term: make([]uint8, p.Group.N())}
	a.roundFor(1)
	return a, nil
}

// Persisted records (core.Output.Persist, durable before the sends of the
// same Output): what a replica said must survive a restart, or a restarted
// replica could send a second, different AUX or CONF in a round, or decide
// twice (ATTACKS.md rows 1 and 5: amnesia is equivocation). Each value is
// the round (8 bytes, big-endian) and one byte: the estimate, AUX bit, CONF
// set or decided bit.
const (
	recordRound  = "round"
	recordAux    = "aux"
	recordConf   = "conf"
	recordDecide = "decide"
)

func record(r uint64, b uint8) []byte { return append(binary.BigEndian.AppendUint64(nil, r), b) }

func (a *ABA) persistRound(out *core.Output) {
	out.PersistRecord(a.inst, recordRound, record(a.cur, a.est))
}

// Recover recreates an instance from the records it persisted: its round
// and estimate, the AUX and CONF it sent in that round (it will never send
// different ones) and its decision (never delivered again). Messages it had
// received are lost, so a recovered replica may not finish its current
// round by itself; it still decides on f+1 TERMs.
func Recover(inst core.InstanceID, p Params, records []core.Record) (*ABA, error) {
	a, err := New(inst, p)
	if err != nil {
		return nil, err
	}
	type sent struct{ aux, conf int }
	said := map[uint64]*sent{}
	for _, rec := range records {
		if rec.Instance != inst || len(rec.Value) != 9 || rec.Value[8] > 3 {
			return nil, fmt.Errorf("aba: bad persisted record %q for %s", rec.Key, inst)
		}
		r, b := binary.BigEndian.Uint64(rec.Value), rec.Value[8]
		if said[r] == nil {
			said[r] = &sent{-1, -1}
		}
		switch rec.Key {
		case recordRound:
			if r < a.cur || b > 1 {
				return nil, fmt.Errorf("aba: persisted round %d goes backwards or bad estimate", r)
			}
			a.started, a.cur, a.est = true, r, b
		case recordAux:
			said[r].aux = int(b)
		case recordConf:
			said[r].conf = int(b)
		case recordDecide:
			a.decided, a.decision = true, Decision{Value: b == 1, Round: r}
			a.term[p.Self-1] = b + 1 // our TERM counts once, as before
			a.nterm[b]++
		default:
			return nil, fmt.Errorf("aba: unknown persisted record %q", rec.Key)
		}
	}
	a.rounds = map[uint64]*round{}
	rs := a.roundFor(a.cur)
	if x := said[a.cur]; x != nil {
		if x.aux >= 0 {
			rs.sentAux, rs.auxSent = true, uint8(x.aux)
		}
		if x.conf > 0 {
			rs.sentConf, rs.confSent = true, uint8(x.conf)
		}
	}
	if a.started {
		rs.sentBval[a.est] = true
	}
	return a, nil
}

// Finished reports that the instance decided and saw 2f+1 TERMs: every
// correct replica will decide without it, so the host may drop it.
func (a *ABA) Finished() bool { return a.halted }

// Decided returns the decision, if any.
func (a *ABA) Decided() (Decision, bool) { return a.decision, a.decided }

// Round is the current round.
func (a *ABA) Round() uint64 { return a.cur }

// Ops returns the cryptographic operations this replica performed.
func (a *ABA) Ops() tcoin.Ops { return a.ops }

// Retained is the number of rounds whose messages are kept (bounded by
// MaxRoundsAhead+1).
func (a *ABA) Retained() int { return len(a.rounds) }

// CoinName is the name of round r's coin: bound to the instance and round.
func CoinName(inst core.InstanceID, r uint64) []byte {
	var rb [8]byte
	binary.BigEndian.PutUint64(rb[:], r)
	return coin.Name([]byte("maftia/aba/v1"), []byte(inst), rb[:])
}

func (a *ABA) roundFor(r uint64) *round {
	if rs, ok := a.rounds[r]; ok {
		return rs
	}
	n := a.p.Group.N()
	rs := &round{r: r, bval: [2][]bool{make([]bool, n), make([]bool, n)}, aux: make([]uint8, n),
		conf: make([]uint8, n), toss: tcoin.New(a.p.Coin, CoinName(a.inst, r), n)}
	a.rounds[r] = rs
	return rs
}

// Encode marshals an ABA message.
func Encode(m *wire.ABA) []byte {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("aba: marshal: %v", err))
	}
	return b
}

// Decode parses and validates an ABA message from the network.
func Decode(b []byte) (*wire.ABA, error) {
	var m wire.ABA
	if err := proto.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: aba: %v", wire.ErrMalformed, err)
	}
	bad := func(format string, args ...any) (*wire.ABA, error) {
		return nil, fmt.Errorf("%w: aba: %s", wire.ErrMalformed, fmt.Sprintf(format, args...))
	}
	switch m.Kind {
	case wire.ABA_BVAL, wire.ABA_AUX:
		if m.Round == 0 || m.Value > 1 || len(m.Share) != 0 {
			return bad("%s needs round ≥ 1, a bit and no share", m.Kind)
		}
	case wire.ABA_CONF:
		if m.Round == 0 || m.Value < 1 || m.Value > 3 || len(m.Share) != 0 {
			return bad("CONF needs round ≥ 1, a non-empty value set and no share")
		}
	case wire.ABA_COIN:
		if m.Round == 0 || m.Value != 0 || len(m.Share) != tsig.ShareSize {
			return bad("COIN needs round ≥ 1 and a %d-byte share", tsig.ShareSize)
		}
	case wire.ABA_TERM:
		if m.Round != 0 || m.Value > 1 || len(m.Share) != 0 {
			return bad("TERM carries only a bit")
		}
	default:
		return bad("unknown kind %d", m.Kind)
	}
	return &m, nil
}

// Checked is the result of Precheck: the decoded message and, for COIN,
// the share verified with a pairing.
type Checked struct {
	Msg   *wire.ABA
	Share coin.Share
}

// Precheck decodes a message and fully verifies a coin share, off the
// stepping goroutine (DESIGN §3). It is pure: it reads only immutable
// parameters. An invalid share is returned as an error wrapping Evidence.
func (a *ABA) Precheck(m core.Message) (any, error) { return Precheck(a.p.Coin, a.p.FixedCoins, m) }

// errFixedRoundShare drops a coin share for a fixed-coin round unverified.
var errFixedRoundShare = errors.New("aba: coin share for a fixed-coin round")

// Precheck is the pure check of a message for instance m.Instance, for
// hosts (agreement/mvba) that check messages of ABA instances they have
// not created yet; fixedCoins is their Params.FixedCoins. A share for a
// fixed-coin round is dropped without the pairing check (nobody needs it).
func Precheck(c *coin.Coin, fixedCoins []bool, m core.Message) (any, error) {
	msg, err := Decode(m.Payload)
	if err != nil {
		return nil, &core.Evidence{Accused: m.From, Kind: core.Malformed, Instance: m.Instance, Detail: err.Error()}
	}
	chk := &Checked{Msg: msg}
	if msg.Kind == wire.ABA_COIN {
		if msg.Round >= 1 && msg.Round <= uint64(len(fixedCoins)) {
			return nil, errFixedRoundShare
		}
		s, err := tcoin.Verify(c, CoinName(m.Instance, msg.Round), m.From, msg.Share)
		if err != nil {
			return nil, &core.Evidence{Accused: m.From, Kind: core.InvalidProof, Instance: m.Instance, Detail: err.Error()}
		}
		chk.Share = s
	}
	return chk, nil
}

// Step applies one event.
func (a *ABA) Step(ev core.Event, out *core.Output) error {
	switch e := ev.(type) {
	case core.Input:
		return a.propose(e, out)
	case core.Message:
		a.receive(e, out)
		return nil
	default:
		return fmt.Errorf("aba: unexpected event %s", ev)
	}
}

func (a *ABA) broadcast(m *wire.ABA, out *core.Output) { out.Broadcast(a.inst, Encode(m)) }

// propose(v): est ← v; r ← 1; BV-broadcast BVAL_1(est).
func (a *ABA) propose(in core.Input, out *core.Output) error {
	v, ok := in.Value.(bool)
	if !ok {
		return fmt.Errorf("aba: input value is %T, want bool", in.Value)
	}
	if a.started {
		return fmt.Errorf("aba: second input for %s", a.inst)
	}
	if a.halted {
		return nil
	}
	a.started = true
	if v {
		a.est = 1
	}
	a.persistRound(out)
	a.sendBval(a.rounds[a.cur], a.est, out)
	a.progress(out)
	return nil
}

func (a *ABA) sendBval(rs *round, b uint8, out *core.Output) {
	if rs.sentBval[b] {
		return
	}
	rs.sentBval[b] = true
	a.broadcast(&wire.ABA{Kind: wire.ABA_BVAL, Round: rs.r, Value: uint32(b)}, out)
}

func (a *ABA) receive(m core.Message, out *core.Output) {
	if a.halted || !a.p.Group.Contains(m.From) {
		return
	}
	if m.Instance != a.inst {
		out.Accuse(m.From, core.Malformed, m.Instance, "message for a sub-instance of %s", a.inst)
		return
	}
	var msg *wire.ABA
	var share *coin.Share
	if c, ok := m.Checked.(*Checked); ok && c != nil {
		msg = c.Msg
		if msg.Kind == wire.ABA_COIN {
			share = &c.Share
		}
	} else {
		var err error
		if msg, err = Decode(m.Payload); err != nil {
			out.Accuse(m.From, core.Malformed, a.inst, "%v", err)
			return
		}
	}
	j := int(m.From) - 1
	if msg.Kind == wire.ABA_TERM {
		a.onTerm(m.From, uint8(msg.Value), out)
		return
	}
	if msg.Round < a.cur || msg.Round > a.cur+a.p.MaxRoundsAhead {
		return // past round, or too far ahead to keep (bounded memory)
	}
	rs := a.roundFor(msg.Round)
	switch msg.Kind {
	case wire.ABA_BVAL:
		if b := msg.Value; !rs.bval[b][j] {
			rs.bval[b][j] = true
			rs.nbval[b]++
		}
	case wire.ABA_AUX:
		switch v := uint8(msg.Value) + 1; rs.aux[j] {
		case 0:
			rs.aux[j] = v
		case v:
		default:
			out.Accuse(m.From, core.Equivocation, a.inst, "two AUX values in round %d", msg.Round)
		}
	case wire.ABA_CONF:
		switch v := uint8(msg.Value); rs.conf[j] {
		case 0:
			rs.conf[j] = v
		case v:
		default:
			out.Accuse(m.From, core.Equivocation, a.inst, "two CONF sets in round %d", msg.Round)
		}
	case wire.ABA_COIN:
		if _, fixed := a.fixedCoin(msg.Round); fixed || rs.toss.Have(m.From) {
			return // no share is ever needed for a fixed round
		}
		verified := share != nil
		if !verified {
			s, err := tcoin.Decode(a.p.Coin, rs.toss.Name(), m.From, msg.Share)
			if err != nil {
				out.Accuse(m.From, core.InvalidProof, a.inst, "coin share for round %d: %v", msg.Round, err)
				return
			}
			share = &s
		}
		rs.toss.Add(m.From, *share, verified)
	}
	if msg.Round == a.cur {
		a.progress(out)
	}
}

// progress runs the round's wait conditions in order until none fires.
func (a *ABA) progress(out *core.Output) {
	g := a.p.Group
	for a.started && !a.halted {
		rs := a.rounds[a.cur]
		for b := uint8(0); b < 2; b++ {
			// upon BVAL_r(b) from f+1 replicas and BVAL_r(b) not sent: broadcast BVAL_r(b)
			if rs.nbval[b] >= g.F()+1 {
				a.sendBval(rs, b, out)
			}
			// upon BVAL_r(b) from 2f+1 replicas: bin_values_r ← bin_values_r ∪ {b};
			// the first time bin_values_r ≠ ∅: broadcast AUX_r(b)
			if rs.nbval[b] >= 2*g.F()+1 && rs.bin&(1<<b) == 0 {
				rs.bin |= 1 << b
				if !rs.sentAux {
					rs.sentAux, rs.auxSent = true, b
					out.PersistRecord(a.inst, recordAux, record(rs.r, b))
					a.broadcast(&wire.ABA{Kind: wire.ABA_AUX, Round: rs.r, Value: uint32(b)}, out)
				}
			}
		}
		// wait until AUX_r from n−f replicas carry values in bin_values_r;
		// vals ← those values; broadcast CONF_r(vals)   (the CONF fix: vals,
		// not the whole bin_values)
		if rs.sentAux && !rs.sentConf {
			var vals uint8
			cnt := 0
			for _, x := range rs.aux {
				if x != 0 && rs.bin&(1<<(x-1)) != 0 {
					cnt++
					vals |= 1 << (x - 1)
				}
			}
			if cnt >= g.Quorum() && a.p.UnsafeSkipConf {
				rs.sentConf, rs.confSent = true, vals // no CONF round
			} else if cnt >= g.Quorum() {
				rs.sentConf, rs.confSent = true, vals
				out.PersistRecord(a.inst, recordConf, record(rs.r, vals))
				a.broadcast(&wire.ABA{Kind: wire.ABA_CONF, Round: rs.r, Value: uint32(vals)}, out)
			}
		}
		// wait until CONF_r from n−f replicas carry sets ⊆ bin_values_r;
		// vals ← the union of those sets (fixed before the coin is known);
		// only now release the coin share of round r
		if rs.sentConf && !rs.released {
			var vals uint8
			cnt := 0
			for _, x := range rs.conf {
				if x != 0 && x&^rs.bin == 0 {
					cnt++
					vals |= x
				}
			}
			if cnt < g.Quorum() && !a.p.UnsafeSkipConf {
				return
			}
			rs.released, rs.vals = true, vals
			if a.p.UnsafeOwnVals || a.p.UnsafeSkipConf {
				rs.vals = rs.confSent
			}
			if _, fixed := a.fixedCoin(rs.r); a.p.UnsafeCoin == nil && !fixed {
				a.ops.SharesSigned++
				sh := coin.ShareFor(a.p.Key, rs.toss.Name())
				a.broadcast(&wire.ABA{Kind: wire.ABA_COIN, Round: rs.r, Share: sh.Marshal()}, out)
			}
		}
		if !rs.released {
			return
		}
		// s ← coin_r (f+1 valid shares; or the round's fixed coin)
		var s uint8
		if a.p.UnsafeCoin != nil {
			s = a.p.UnsafeCoin(rs.r, a.est) & 1
		} else if v, fixed := a.fixedCoin(rs.r); fixed {
			s = v
		} else {
			v, ok := rs.toss.Try(g.F()+1, a.inst, &a.ops, out)
			if !ok {
				return
			}
			s = v.Bit()
		}
		// if vals = {b}: est ← b; if b = s: decide b.  else est ← s.
		if b, ok := single(rs.vals); ok {
			a.est = b
			if b == s {
				a.decide(b, false, out)
			}
		} else {
			a.est = s
		}
		// r ← r+1
		delete(a.rounds, a.cur)
		a.cur++
		a.persistRound(out)
		a.sendBval(a.roundFor(a.cur), a.est, out)
	}
}

// fixedCoin returns round r's coin if Params.FixedCoins fixes it.
func (a *ABA) fixedCoin(r uint64) (uint8, bool) {
	if r < 1 || r > uint64(len(a.p.FixedCoins)) {
		return 0, false
	}
	if a.p.FixedCoins[r-1] {
		return 1, true
	}
	return 0, true
}

// decide(b): deliver b once and broadcast TERM(b).
func (a *ABA) decide(b uint8, byTerm bool, out *core.Output) {
	if a.decided {
		return
	}
	a.decided, a.decision = true, Decision{Value: b == 1, Round: a.cur, ByTerm: byTerm}
	out.PersistRecord(a.inst, recordDecide, record(a.cur, b))
	out.Deliver(a.inst, a.decision)
	a.broadcast(&wire.ABA{Kind: wire.ABA_TERM, Value: uint32(b)}, out)
}

// upon TERM(b) from f+1 replicas: decide b (a correct replica decided b);
// upon TERM(b) from 2f+1 replicas: halt (f+1 correct replicas decided and
// sent TERM, so every correct replica will get f+1 TERMs and decide).
func (a *ABA) onTerm(from core.NodeID, b uint8, out *core.Output) {
	j := from - 1
	switch a.term[j] {
	case 0:
		a.term[j] = b + 1
		a.nterm[b]++
	case b + 1:
		return
	default:
		out.Accuse(from, core.Equivocation, a.inst, "TERM for both values")
		return
	}
	g := a.p.Group
	if a.nterm[b] >= g.F()+1 && !a.decided {
		a.decide(b, true, out)
	}
	if a.nterm[b] >= 2*g.F()+1 && a.decided && a.decision.Value == (b == 1) {
		a.halted = true
		a.rounds = nil
	}
}

// Describe renders a payload for simulator traces.
func Describe(payload []byte) string {
	m, err := Decode(payload)
	if err != nil {
		return fmt.Sprintf("garbage(%dB)", len(payload))
	}
	switch m.Kind {
	case wire.ABA_CONF:
		return fmt.Sprintf("CONF r=%d vals=%s", m.Round, setString(uint8(m.Value)))
	case wire.ABA_COIN:
		return fmt.Sprintf("COIN r=%d", m.Round)
	case wire.ABA_TERM:
		return fmt.Sprintf("TERM %d", m.Value)
	}
	return fmt.Sprintf("%s r=%d %d", m.Kind, m.Round, m.Value)
}

func setString(s uint8) string {
	switch s {
	case has0:
		return "{0}"
	case has1:
		return "{1}"
	case has0 | has1:
		return "{0,1}"
	}
	return "{}"
}
