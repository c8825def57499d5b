package hybrid

import (
	"errors"
	"fmt"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/ttcb"
)

// RMParams configure one BRM-T reliable multicast instance.
type RMParams struct {
	Group  core.Group
	Self   core.NodeID
	Sender core.NodeID
	// TStart is the TTCB time at which the block agreement on the
	// message's hash starts. It is part of the message's identity (as in
	// BRM-T, where a message is named by (elist, tstart)) and must be the
	// same at every replica: the parent fixes it (a schedule derived from
	// agreed history, or configuration), never the sender alone, so a
	// Byzantine sender cannot split the correct replicas over two
	// executions.
	TStart     uint64
	MaxPayload int
	// TBA and Retention (the TTCB's T_TBA and a lower bound on how long
	// it keeps results) let a replica that joins late tell "the sender
	// never proposed" (no execution exists) from "the result expired":
	// the TTCB answers both with ErrExpired. With Retention 0 every
	// refusal means "never deliver" (safe for a standalone multicast, but
	// a parent that needs the common outcome must set them).
	TBA, Retention uint64
}

// DefaultRMParams returns parameters with a 1 MiB payload bound.
func DefaultRMParams(g core.Group, self, sender core.NodeID, tstart uint64) RMParams {
	return RMParams{Group: g, Self: self, Sender: sender, TStart: tstart, MaxPayload: 1 << 20,
		TBA: ttcb.DefaultModelParams().TBA, Retention: ttcb.DefaultModelParams().Retention}
}

// Check validates the parameters, refusing groups below n ≥ f+2.
func (p RMParams) Check() error {
	if p.Group.N() < core.HybridMulticast.MinN(p.Group.F()) {
		return fmt.Errorf("hybrid: %w: BRM-T needs n ≥ f+2, have %s", core.ErrResilience, p.Group)
	}
	if p.Group.N() > ttcb.MaxElist {
		return fmt.Errorf("hybrid: n=%d > %d entities per TTCB agreement", p.Group.N(), ttcb.MaxElist)
	}
	if !p.Group.Contains(p.Self) || !p.Group.Contains(p.Sender) {
		return fmt.Errorf("hybrid: self %d or sender %d not in %s", p.Self, p.Sender, p.Group)
	}
	if p.MaxPayload <= 0 {
		return errors.New("hybrid: MaxPayload must be positive")
	}
	return nil
}

// RMDigest is the value a replica proposes to the TTCB for message m of
// instance inst: H("maftia/hybrid/brm/v1", inst, tstart, m).
func RMDigest(inst core.InstanceID, tstart uint64, m []byte) ttcb.Value {
	var ts [8]byte
	for i := range ts {
		ts[i] = byte(tstart >> (56 - 8*i))
	}
	return hashOf("maftia/hybrid/brm/v1", []byte(inst), ts[:], m)
}

// RMDelivery is what an RMulticast delivers: the message and the
// proposed-ok mask the TTCB decided (for the parent, e.g. vector
// consensus, which needs to know how many replicas hold it).
type RMDelivery struct {
	Sender     core.NodeID
	Value      []byte
	ProposedOK []core.NodeID
}

func (d RMDelivery) String() string { return fmt.Sprintf("%q", abbreviate(d.Value)) }

// RMOutcome is the agreed result of the instance's block agreement,
// reported to a parent that asked for it (WantOutcome) before or without
// delivery: every correct replica that obtains it obtains the same one.
type RMOutcome struct {
	// Lost means the result could not be obtained (it expired): the
	// replica cannot know the common outcome.
	Lost       bool
	Decided    bool
	Digest     ttcb.Value
	ProposedOK []core.NodeID
}

// Tags of this instance's TTCB requests.
const (
	rmTagPropose uint64 = 2 // and 3 for the decide that follows
	rmTagTime    uint64 = 4
	rmTagJoin    uint64 = 6 // timestamp asked before joining on a RETRANSMIT
)

// RMulticast is one BRM-T instance at one replica; see the package
// documentation for the protocol and its guarantees.
type RMulticast struct {
	inst  core.InstanceID
	p     RMParams
	elist []ttcb.EntityID

	value     []byte
	haveValue bool
	digest    ttcb.Value

	proposed  bool
	joinAsked bool // a timestamp request for joining is outstanding
	result    *ttcb.TBAResult
	refused   bool // the TTCB refused to give us the result: we never deliver
	done      bool // delivered, or known never to deliver

	// candidates are messages received in RETRANSMITs before the result
	// was known: at most one per sender, so memory is bounded by n.
	candidates map[core.NodeID][]byte

	// OnOutcome, if set, is called once with the TTCB's result.
	OnOutcome func(RMOutcome, *core.Output)
}

// NewRMulticast creates an instance. The sender starts it with
// core.Input{Value: []byte}; other replicas start on the first message.
func NewRMulticast(inst core.InstanceID, p RMParams) (*RMulticast, error) {
	if err := p.Check(); err != nil {
		return nil, err
	}
	return &RMulticast{inst: inst, p: p, elist: rotated(p.Group, p.Sender), candidates: map[core.NodeID][]byte{}}, nil
}

// Finished reports that the instance delivered or knows it never will.
func (r *RMulticast) Finished() bool { return r.done }

func (r *RMulticast) limits() Limits {
	return Limits{MaxValue: r.p.MaxPayload, MaxN: r.p.Group.N()}
}

// Precheck decodes a message off the stepping goroutine.
func (r *RMulticast) Precheck(m core.Message) (any, error) {
	msg, err := Decode(m.Payload, r.limits())
	if err != nil {
		return nil, &core.Evidence{Accused: m.From, Kind: core.Malformed, Instance: m.Instance, Detail: err.Error()}
	}
	return msg, nil
}

// Step applies one event.
func (r *RMulticast) Step(ev core.Event, out *core.Output) error {
	switch e := ev.(type) {
	case core.Input:
		return r.multicast(e, out)
	case core.Message:
		r.receive(e, out)
		return nil
	case core.ServiceReply:
		r.reply(e, out)
		return nil
	}
	return fmt.Errorf("hybrid: brm: unexpected event %s", ev)
}

// Sender (BRM-T): multicast M on the payload network, then
// TTCB_propose(elist, tstart, TTCB_TBA_RMULTICAST, H(M)) and
// TTCB_decide.
func (r *RMulticast) multicast(in core.Input, out *core.Output) error {
	v, ok := in.Value.([]byte)
	if !ok {
		return fmt.Errorf("hybrid: brm: input value is %T, want []byte", in.Value)
	}
	if r.p.Self != r.p.Sender {
		return fmt.Errorf("hybrid: brm: replica %d is not the sender %d of %s", r.p.Self, r.p.Sender, r.inst)
	}
	if len(v) > r.p.MaxPayload {
		return fmt.Errorf("hybrid: brm: payload %d bytes > MaxPayload %d", len(v), r.p.MaxPayload)
	}
	if r.haveValue || r.proposed {
		return fmt.Errorf("hybrid: brm: %s multicast twice", r.inst)
	}
	out.Broadcast(r.inst, Encode(&Message{Kind: KindData, Value: v}))
	r.accept(v, out) // our own copy, when it arrives, changes nothing
	return nil
}

// accept records M (from the sender's DATA) and proposes its hash.
func (r *RMulticast) accept(v []byte, out *core.Output) {
	r.value, r.haveValue, r.digest = v, true, RMDigest(r.inst, r.p.TStart, v)
	r.propose(r.digest, out)
}

func (r *RMulticast) propose(v ttcb.Value, out *core.Output) {
	if r.proposed {
		return
	}
	r.proposed = true
	proposeAndDecide(out, r.inst, rmTagPropose, r.elist, r.p.TStart, ttcb.DecisionRMulticast, v)
}

func (r *RMulticast) receive(m core.Message, out *core.Output) {
	if r.done || !r.p.Group.Contains(m.From) {
		return
	}
	msg, ok := m.Checked.(*Message)
	if !ok {
		var err error
		if msg, err = Decode(m.Payload, r.limits()); err != nil {
			out.Accuse(m.From, core.Malformed, r.inst, "%v", err)
			return
		}
	}
	switch msg.Kind {
	case KindData:
		r.onData(m.From, msg.Value, out)
	case KindRetransmit:
		r.onRetransmit(m.From, msg.Value, out)
	default:
		out.Accuse(m.From, core.Unexpected, r.inst, "%s in a reliable multicast", msg.Kind)
	}
}

// Recipient: upon receiving M from the sender, propose H(M) (late
// proposals are refused by the TTCB but still let us read the result).
func (r *RMulticast) onData(from core.NodeID, v []byte, out *core.Output) {
	if from != r.p.Sender {
		out.Accuse(from, core.Unexpected, r.inst, "DATA from %d, not the sender %d", from, r.p.Sender)
		return
	}
	if r.haveValue {
		if RMDigest(r.inst, r.p.TStart, v) != r.digest {
			out.Accuse(from, core.Equivocation, r.inst, "sender sent two different messages")
		}
		return
	}
	if r.proposed {
		// We already proposed (a RETRANSMIT made us join): keep M as a
		// candidate from the sender and wait for the result.
		r.candidates[from] = v
		r.tryDeliver(out)
		return
	}
	r.accept(v, out)
}

// Recovery: M retransmitted by a replica that holds it. Before the result
// is known it is only a candidate; it also tells us the instance exists,
// so we join the block agreement to learn its result — but only once TTCB
// time is past tstart (asked with a trusted timestamp): a correct replica
// retransmits only after the agreement, so an earlier RETRANSMIT is a
// Byzantine attempt to make us propose "nothing" before the sender's
// DATA arrives, which would keep us out of proposed-ok.
func (r *RMulticast) onRetransmit(from core.NodeID, v []byte, out *core.Output) {
	if r.result == nil {
		r.candidates[from] = v
		if !r.proposed && !r.joinAsked {
			r.joinAsked = true
			out.Request(r.inst, ttcb.ServiceName, rmTagJoin, ttcb.GetTimestamp{})
		}
		return
	}
	r.candidates[from] = v
	r.tryDeliver(out)
}

// Join makes the replica take part in the block agreement without the
// message (it proposes a value no message hashes to), so that it learns
// the common outcome; a parent calls it once TTCB time is past tstart.
func (r *RMulticast) Join(out *core.Output) { r.propose(ttcb.Value{}, out) }

func (r *RMulticast) reply(e core.ServiceReply, out *core.Output) {
	if e.Tag == rmTagJoin {
		r.joinAsked = false
		if ts, ok := e.Reply.(ttcb.Timestamp); ok && ts.Time >= r.p.TStart && r.result == nil {
			r.Join(out)
		}
		return
	}
	if (e.Tag != rmTagPropose|1 && e.Tag != rmTagTime) || r.result != nil || r.refused {
		return // propose acknowledgements (or refusals) need no action
	}
	switch res := e.Reply.(type) {
	case ttcb.Refused:
		if e.Tag == rmTagPropose|1 && r.p.Retention > 0 && errors.Is(res.Err, ttcb.ErrExpired) {
			// No execution, or an expired one: ask the time to tell.
			out.Request(r.inst, ttcb.ServiceName, rmTagTime, ttcb.GetTimestamp{})
			return
		}
		r.lose(out)
	case ttcb.Timestamp:
		if res.Time >= r.p.TStart+r.p.TBA+r.p.Retention {
			r.lose(out)
			return
		}
		// The refusal came before this time, when a result would still
		// have been retained: nobody proposed by tstart, nothing decided.
		r.result = &ttcb.TBAResult{}
		if r.OnOutcome != nil {
			r.OnOutcome(RMOutcome{}, out)
		}
		r.finish()
	case ttcb.TBAResult:
		if res.Withheld {
			r.lose(out) // the module withholds this execution for good
			return
		}
		r.result = &res
		if r.OnOutcome != nil {
			r.OnOutcome(RMOutcome{Decided: res.Decided, Digest: res.Value, ProposedOK: members(r.elist, res.ProposedOK)}, out)
		}
		if !res.Decided {
			// The sender did not propose by tstart: no message is valid.
			r.finish()
			return
		}
		r.tryDeliver(out)
	}
}

// lose: the result is unobtainable (expired, or the module is unavailable
// for this execution); we can no longer learn which message is valid, so
// we never deliver. Safety is kept; only this replica's totality is lost.
func (r *RMulticast) lose(out *core.Output) {
	r.refused = true
	if r.OnOutcome != nil {
		r.OnOutcome(RMOutcome{Lost: true}, out)
	}
	r.finish()
}

// Correct replicas deliver only the message whose hash the TBA decided.
// A replica that delivers retransmits M to every replica missing from
// proposed-ok, if it is among the first f+1 of proposed-ok or not in it at
// all (so at least one correct replica retransmits: of the first f+1
// holders one is correct, and a correct non-holder that delivered got M
// only after the agreement and forwards it itself).
func (r *RMulticast) tryDeliver(out *core.Output) {
	if r.done || r.result == nil || !r.result.Decided {
		return
	}
	want := r.result.Value
	if !r.haveValue || r.digest != want {
		var found []byte
		ok := false
		for _, id := range r.p.Group.Members() { // deterministic order
			if v, have := r.candidates[id]; have && RMDigest(r.inst, r.p.TStart, v) == want {
				found, ok = v, true
				break
			}
		}
		if !ok {
			return // wait for a retransmission
		}
		r.value, r.haveValue, r.digest = found, true, want
	}
	holders := members(r.elist, r.result.ProposedOK)
	rank := -1
	for i, h := range holders {
		if h == r.p.Self {
			rank = i
		}
	}
	if rank < 0 || rank < r.p.Group.F()+1 {
		payload := Encode(&Message{Kind: KindRetransmit, Value: r.value})
		isHolder := make(map[core.NodeID]bool, len(holders))
		for _, h := range holders {
			isHolder[h] = true
		}
		for _, to := range r.p.Group.Members() {
			if to != r.p.Self && !isHolder[to] {
				out.SendTo(to, r.inst, payload)
			}
		}
	}
	out.Deliver(r.inst, RMDelivery{Sender: r.p.Sender, Value: r.value, ProposedOK: holders})
	r.finish()
}

func (r *RMulticast) finish() {
	r.done = true
	r.candidates = nil
}
