package hybrid

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/ttcb"
)

// VCParams configure one vector consensus (or consensus) instance.
type VCParams struct {
	Group core.Group
	Self  core.NodeID
	// Start is the tstart of round 0's block agreements and Window the
	// base gap between a round's results and the next round's tstart
	// (doubling every round, up to Window·2^MaxBackoff); TBA and
	// Retention are the TTCB's (see RMParams). All must be equal at every
	// replica: round tstarts are computed from them alone.
	Start, Window, TBA, Retention uint64
	MaxBackoff                    uint
	MaxPayload                    int
	// EarlyCount and EarlyBytes bound, per sender, the messages buffered
	// for later rounds.
	EarlyCount, EarlyBytes int
}

// DefaultVCParams returns parameters for the TTCB model's timing.
func DefaultVCParams(g core.Group, self core.NodeID, start uint64) VCParams {
	mp := ttcb.DefaultModelParams()
	return VCParams{Group: g, Self: self, Start: start, Window: 40, TBA: mp.TBA, Retention: mp.Retention,
		MaxBackoff: 8, MaxPayload: 1 << 20, EarlyCount: 64, EarlyBytes: 8 << 20}
}

// Check validates the parameters, refusing n < 3f+1.
func (p VCParams) Check() error {
	switch {
	case p.Group.N() < core.Async.MinN(p.Group.F()):
		return fmt.Errorf("hybrid: %w: vector consensus needs n ≥ 3f+1, have %s", core.ErrResilience, p.Group)
	case p.Group.N() > ttcb.MaxElist:
		return fmt.Errorf("hybrid: n=%d > %d entities per TTCB agreement", p.Group.N(), ttcb.MaxElist)
	case !p.Group.Contains(p.Self):
		return fmt.Errorf("hybrid: self %d not in %s", p.Self, p.Group)
	case p.Window == 0 || p.TBA == 0 || p.Retention == 0 || p.MaxPayload <= 0 || p.MaxBackoff > 30 || p.EarlyCount < 1 || p.EarlyBytes < 1:
		return errors.New("hybrid: Window, TBA, Retention, MaxPayload, EarlyCount, EarlyBytes must be positive and MaxBackoff ≤ 30")
	}
	return nil
}

// Vector is the decision of vector consensus: Values[i] is replica i+1's
// proposal, or nil (⊥) when Present[i] is false. At least 2f+1 entries are
// present, so at least f+1 come from correct replicas.
type Vector struct {
	Round   uint64
	Present []bool
	Values  [][]byte
}

func (v Vector) String() string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "r%d[", v.Round)
	for i, ok := range v.Present {
		if i > 0 {
			b.WriteByte(' ')
		}
		if ok {
			fmt.Fprintf(&b, "%q", abbreviate(v.Values[i]))
		} else {
			b.WriteString("⊥")
		}
	}
	b.WriteByte(']')
	return b.String()
}

// Decision is the decision of (multivalued) consensus: the value proposed
// by at least f+1 entries of the decided vector (the most frequent, ties
// to the smallest), or Default (Value nil) when there is none.
type Decision struct {
	Default bool
	Value   []byte
}

func (d Decision) String() string {
	if d.Default {
		return "⊥"
	}
	return fmt.Sprintf("%q", abbreviate(d.Value))
}

// VConsensus is vector consensus (and, with NewConsensus, multivalued
// consensus) at one replica; see the package documentation.
type VConsensus struct {
	root      core.InstanceID
	p         VCParams
	consensus bool

	value      []byte
	haveValue  bool
	round      uint64
	tstart     uint64
	children   []*RMulticast // current round, per sender
	outcomes   []*RMOutcome
	noutcomes  int
	values     [][]byte
	delivered  []bool
	joined     bool
	early      *core.EarlyBuffer
	done       bool
	scratch    core.Output
	RoundsUsed uint64
}

// NewVConsensus creates a vector consensus instance rooted at root. Every
// correct replica gives it its proposal as core.Input{Value: []byte}.
func NewVConsensus(root core.InstanceID, p VCParams) (*VConsensus, error) {
	if err := p.Check(); err != nil {
		return nil, err
	}
	v := &VConsensus{root: root, p: p, early: core.NewEarlyBuffer(p.EarlyCount, p.EarlyBytes)}
	v.startRound(0, p.Start, nil)
	return v, nil
}

// NewConsensus creates a multivalued consensus instance: it runs vector
// consensus and delivers a Decision instead of the Vector.
func NewConsensus(root core.InstanceID, p VCParams) (*VConsensus, error) {
	v, err := NewVConsensus(root, p)
	if err == nil {
		v.consensus = true
	}
	return v, err
}

// DecisionTStart is the tstart of the round that decided (valid once
// Finished): a parent derives its next instance's schedule from it, so
// every correct replica derives the same one.
func (v *VConsensus) DecisionTStart() uint64 { return v.tstart }

// Finished reports the decision.
func (v *VConsensus) Finished() bool { return v.done }

func (v *VConsensus) roundInstance(r uint64) core.InstanceID { return v.root.ChildN("r", r) }

func (v *VConsensus) startRound(r, tstart uint64, out *core.Output) {
	n := v.p.Group.N()
	v.round, v.tstart, v.RoundsUsed = r, tstart, r+1
	v.children, v.outcomes, v.noutcomes = make([]*RMulticast, n), make([]*RMOutcome, n), 0
	v.values, v.delivered, v.joined = make([][]byte, n), make([]bool, n), false
	if out == nil {
		return
	}
	if v.haveValue {
		v.multicastOwn(out)
	}
	for _, m := range v.early.Take(v.roundInstance(r)) {
		v.message(m, out)
	}
}

func (v *VConsensus) child(s core.NodeID) *RMulticast {
	if c := v.children[s-1]; c != nil {
		return c
	}
	p := RMParams{Group: v.p.Group, Self: v.p.Self, Sender: s, TStart: v.tstart, MaxPayload: v.p.MaxPayload,
		TBA: v.p.TBA, Retention: v.p.Retention}
	c, err := NewRMulticast(v.roundInstance(v.round).ChildN("brm", uint64(s)), p)
	if err != nil {
		panic(err) // parameters were checked at construction
	}
	round := v.round
	c.OnOutcome = func(o RMOutcome, out *core.Output) {
		if v.round == round && v.outcomes[s-1] == nil {
			v.outcomes[s-1] = &o
			v.noutcomes++
		}
	}
	v.children[s-1] = c
	return c
}

// Step applies one event.
func (v *VConsensus) Step(ev core.Event, out *core.Output) error {
	if v.done {
		return nil
	}
	switch e := ev.(type) {
	case core.Input:
		val, ok := e.Value.([]byte)
		if !ok || v.haveValue {
			return fmt.Errorf("hybrid: vc: bad or second input %T", e.Value)
		}
		if len(val) > v.p.MaxPayload {
			return fmt.Errorf("hybrid: vc: proposal of %d bytes > %d", len(val), v.p.MaxPayload)
		}
		v.value, v.haveValue = val, true
		v.multicastOwn(out)
	case core.Message:
		v.message(e, out)
	case core.ServiceReply:
		if c := v.childFor(e.Instance); c != nil {
			return v.stepChild(c, e, out)
		}
	}
	return nil
}

// Round r: reliably multicast the proposal with BRM-T (tstart_r).
func (v *VConsensus) multicastOwn(out *core.Output) {
	c := v.child(v.p.Self)
	if c.proposed {
		return
	}
	_ = v.stepChild(c, core.Input{Instance: c.inst, Value: v.value}, out)
}

// childFor maps an instance "root/r:R/brm:S" of the current round to its
// child.
func (v *VConsensus) childFor(inst core.InstanceID) *RMulticast {
	if inst.Parent() != v.roundInstance(v.round) {
		return nil
	}
	name, s, ok := inst.Last()
	if name != "brm" || !ok || !v.p.Group.Contains(core.NodeID(s)) {
		return nil
	}
	return v.child(core.NodeID(s))
}

func (v *VConsensus) message(m core.Message, out *core.Output) {
	rinst := m.Instance.Parent()
	if rinst.Parent() != v.root {
		return
	}
	if _, r, ok := rinst.Last(); ok && r > v.round && r <= v.round+2 {
		v.early.Add(m) // a later round: held, bounded per sender
		return
	}
	if c := v.childFor(m.Instance); c != nil {
		_ = v.stepChild(c, m, out)
	}
}

func (v *VConsensus) stepChild(c *RMulticast, ev core.Event, out *core.Output) error {
	v.scratch.Reset()
	if err := c.Step(ev, &v.scratch); err != nil {
		return err
	}
	out.Sends = append(out.Sends, v.scratch.Sends...)
	out.Requests = append(out.Requests, v.scratch.Requests...)
	out.Evidence = append(out.Evidence, v.scratch.Evidence...)
	for _, d := range v.scratch.Deliveries {
		if rd, ok := d.Value.(RMDelivery); ok && !v.delivered[rd.Sender-1] {
			v.delivered[rd.Sender-1], v.values[rd.Sender-1] = true, rd.Value
		}
	}
	return v.progress(out)
}

// progress: once any result of the round is in (TTCB time is past
// tstart_r), join every other multicast to learn its outcome; once all n
// outcomes are in, decide or go to the next round.
func (v *VConsensus) progress(out *core.Output) error {
	if v.noutcomes > 0 && !v.joined {
		v.joined = true
		for _, s := range v.p.Group.Members() {
			if c := v.child(s); !c.proposed {
				v.scratch.Reset()
				c.Join(&v.scratch)
				out.Requests = append(out.Requests, v.scratch.Requests...)
			}
		}
	}
	if v.noutcomes < v.p.Group.N() {
		return nil
	}
	// The entries: senders whose hash the TBA decided and whose message
	// at least f+1 replicas hold (so one correct replica retransmits it).
	present := make([]bool, v.p.Group.N())
	count := 0
	for i, o := range v.outcomes {
		if o.Lost {
			return fmt.Errorf("hybrid: vc: the outcome of %s round %d sender %d was lost", v.root, v.round, i+1)
		}
		if o.Decided && len(o.ProposedOK) >= v.p.Group.F()+1 {
			present[i] = true
			count++
		}
	}
	if count < 2*v.p.Group.F()+1 {
		next := v.tstart + v.p.TBA + v.p.Window<<min(v.round+1, uint64(v.p.MaxBackoff))
		v.startRound(v.round+1, next, out)
		return nil
	}
	for i, ok := range present {
		if ok && !v.delivered[i] {
			return nil // wait for the retransmission
		}
	}
	vec := Vector{Round: v.round, Present: present, Values: make([][]byte, len(present))}
	for i, ok := range present {
		if ok {
			vec.Values[i] = v.values[i]
		}
	}
	v.done = true
	if v.consensus {
		out.Deliver(v.root, decide(vec, v.p.Group.F()))
	} else {
		out.Deliver(v.root, vec)
	}
	v.children, v.early = nil, nil
	return nil
}

// decide maps a vector to the consensus decision: the most frequent value
// if it has at least f+1 entries (ties to the smallest), else the default.
func decide(vec Vector, f int) Decision {
	var best []byte
	bc := 0
	for i, ok := range vec.Present {
		if !ok {
			continue
		}
		c := 0
		for j, ok2 := range vec.Present {
			if ok2 && bytes.Equal(vec.Values[i], vec.Values[j]) {
				c++
			}
		}
		if c > bc || (c == bc && bytes.Compare(vec.Values[i], best) < 0) {
			best, bc = vec.Values[i], c
		}
	}
	if bc >= f+1 {
		return Decision{Value: best}
	}
	return Decision{Default: true}
}
