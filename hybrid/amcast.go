package hybrid

import (
	"errors"
	"fmt"
	"slices"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/wire"
)

// AMParams configure atomic multicast at one replica.
type AMParams struct {
	VC VCParams // Start is the tstart of instance 0's first round
	// Valid is the deterministic request predicate; BatchSize and
	// MaxPending bound a replica's batch per instance and its queue.
	Valid                 func(request []byte) bool
	BatchSize, MaxPending int
	// Gap separates an instance's deciding round from the next
	// instance's first tstart (TTCB time units, beyond T_TBA).
	Gap uint64
}

// DefaultAMParams returns parameters for the TTCB model's timing.
func DefaultAMParams(g core.Group, self core.NodeID, valid func([]byte) bool) AMParams {
	return AMParams{VC: DefaultVCParams(g, self, 60), Valid: valid, BatchSize: 64, MaxPending: 1 << 16, Gap: 40}
}

// Check validates the parameters (n ≥ 3f+1, from vector consensus).
func (p AMParams) Check() error {
	if err := p.VC.Check(); err != nil {
		return err
	}
	if p.Valid == nil || p.BatchSize < 1 || p.MaxPending < 1 || p.Gap == 0 {
		return errors.New("hybrid: amcast needs Valid, and positive BatchSize, MaxPending, Gap")
	}
	return nil
}

// AMulticast is atomic multicast built on vector consensus: instance k
// is a vector consensus on every replica's batch of pending requests; the
// present entries, in replica order and without duplicates, form batch
// k. It delivers *wire.Batch values with consecutive sequence numbers, so
// it also satisfies the smr Engine contract (with n ≥ 3f+1).
type AMulticast struct {
	root    core.InstanceID
	p       AMParams
	pending [][]byte
	inQueue map[Digest]bool
	k       uint64
	vc      *VConsensus
	started bool
	seq     uint64
	early   *core.EarlyBuffer // messages for instance k+1
	scratch core.Output
}

// NewAMulticast creates atomic multicast rooted at root.
func NewAMulticast(root core.InstanceID, p AMParams) (*AMulticast, error) {
	if err := p.Check(); err != nil {
		return nil, err
	}
	a := &AMulticast{root: root, p: p, inQueue: map[Digest]bool{}, early: core.NewEarlyBuffer(p.VC.EarlyCount, p.VC.EarlyBytes)}
	return a, a.newInstance(0, p.VC.Start)
}

func (a *AMulticast) newInstance(k, start uint64) error {
	vp := a.p.VC
	vp.Start = start
	vc, err := NewVConsensus(a.root.ChildN("k", k), vp)
	a.k, a.vc, a.started = k, vc, false
	return err
}

// Step applies one event.
func (a *AMulticast) Step(ev core.Event, out *core.Output) error {
	if in, ok := ev.(core.Input); ok && in.Instance == a.root {
		r, ok := in.Value.([]byte)
		if !ok {
			return fmt.Errorf("hybrid: amcast: input is %T, want []byte", in.Value)
		}
		if d := requestDigest(r); a.p.Valid(r) && !a.inQueue[d] && len(a.pending) < a.p.MaxPending {
			a.inQueue[d] = true
			a.pending = append(a.pending, r)
		}
		return a.propose(out)
	}
	inst := eventInstance(ev)
	switch inst.Prefix(a.root.Depth() + 1) {
	case a.root.ChildN("k", a.k):
	case a.root.ChildN("k", a.k+1):
		if m, ok := ev.(core.Message); ok {
			a.early.Add(m) // bounded per sender; replayed when k+1 starts
		}
		return nil
	default:
		return nil // finished instances, or too far ahead
	}
	if err := a.stepVC(ev, out); err != nil {
		return err
	}
	return a.propose(out)
}

func eventInstance(ev core.Event) core.InstanceID {
	switch e := ev.(type) {
	case core.Message:
		return e.Instance
	case core.ServiceReply:
		return e.Instance
	case core.TimerFired:
		return e.Instance
	}
	return ""
}

// propose gives the current instance this replica's batch (possibly
// empty) once: every correct replica must propose to every instance.
func (a *AMulticast) propose(out *core.Output) error {
	if a.started {
		return nil
	}
	a.started = true
	batch := a.pending[:min(len(a.pending), a.p.BatchSize)]
	enc := Encode(&Message{Kind: KindBatch, Epoch: a.k, Owner: a.p.VC.Self, Requests: batch})
	return a.stepVC(core.Input{Instance: a.vc.root, Value: enc}, out)
}

func (a *AMulticast) stepVC(ev core.Event, out *core.Output) error {
	a.scratch.Reset()
	if err := a.vc.Step(ev, &a.scratch); err != nil {
		return err
	}
	out.Sends = append(out.Sends, a.scratch.Sends...)
	out.Requests = append(out.Requests, a.scratch.Requests...)
	out.Evidence = append(out.Evidence, a.scratch.Evidence...)
	for _, d := range a.scratch.Deliveries {
		vec, ok := d.Value.(Vector)
		if !ok {
			continue
		}
		a.deliver(vec, out)
		if err := a.newInstance(a.k+1, a.vc.DecisionTStart()+a.p.VC.TBA+a.p.Gap); err != nil {
			return err
		}
		if err := a.propose(out); err != nil {
			return err
		}
		for _, m := range a.early.Take(a.vc.root) {
			if err := a.stepVC(m, out); err != nil {
				return err
			}
		}
		return nil
	}
	return nil
}

// deliver orders the present entries' valid requests (deterministic
// checks only, so every correct replica keeps the same ones).
func (a *AMulticast) deliver(vec Vector, out *core.Output) {
	lim := Limits{MaxRequest: a.p.VC.MaxPayload, MaxRequests: a.p.BatchSize, MaxN: a.p.VC.Group.N()}
	seen := map[Digest]bool{}
	var reqs [][]byte
	for i, ok := range vec.Present {
		if !ok {
			continue
		}
		m, err := Decode(vec.Values[i], lim)
		if err != nil || m.Kind != KindBatch || m.Epoch != a.k || m.Owner != core.NodeID(i+1) {
			continue // a Byzantine proposal: skipped alike everywhere
		}
		for _, r := range m.Requests {
			if d := requestDigest(r); !seen[d] && a.p.Valid(r) {
				seen[d] = true
				reqs = append(reqs, r)
			}
		}
	}
	if len(reqs) == 0 {
		return
	}
	a.seq++
	out.Deliver(a.root, &wire.Batch{Seq: a.seq, Requests: reqs})
	a.pending = slices.DeleteFunc(a.pending, func(r []byte) bool {
		d := requestDigest(r)
		if seen[d] {
			delete(a.inQueue, d)
		}
		return seen[d]
	})
}
