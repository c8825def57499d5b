package suites

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"strings"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/hybrid"
	"github.com/maftia/maftia/sim"
	"github.com/maftia/maftia/ttcb"
	"github.com/maftia/maftia/wire"
)

func init() { register("hybrid-smr", HybridSMR) }

// smrRoot is the engine's instance in the suite (smr.EngineInstance).
var smrRoot = core.Root("order")

// hybridValid is the suite's deterministic request predicate: "ok:"
// requests are validly signed, anything else (a Byzantine replica's
// forgery) is not.
func hybridValid(r []byte) bool { return bytes.HasPrefix(r, []byte("ok:")) }

// HybridSMR is the suite for the hybrid ordering engine (n ≥ 2f+1) with
// the TTCB model as a local service. Each run submits a few client
// requests, each to a random set of replicas containing at least f+1
// correct ones. Checked: agreement and total order (correct replicas'
// batch sequences are prefixes of one another, sequence numbers
// consecutive from 1), integrity (only valid requests, none twice in a
// batch) and, at the end, validity: every request is ordered everywhere.
func HybridSMR(o Options) *sim.Suite {
	s := hybridSuite("hybrid-smr", core.HybridSMR)
	params := func(g core.Group, id core.NodeID) hybrid.Params {
		p := hybrid.DefaultParams(g, id, hybridValid)
		if o.TTCBAttest {
			for m := range g.N() {
				p.ModuleKeys = append(p.ModuleKeys, ttcb.ModelModuleKey(uint32(m+1)).Public().(ed25519.PublicKey))
			}
		}
		return p
	}
	if o.TTCBAttest {
		st := s.State.(*ttcbState)
		s.Services = func(_ core.Group, seed uint64) map[string]sim.Service {
			mp := ttcbModelParams(seed)
			mp.Attest = true
			m, err := ttcb.NewModel(mp)
			if err != nil {
				panic(err) // constant parameters
			}
			st.model, st.calls = m, 0
			return map[string]sim.Service{ttcb.ServiceName: &countingService{ttcbService{m}, st}}
		}
	}
	s.NewReplica = func(id core.NodeID, g core.Group) (core.Protocol, error) {
		e, err := hybrid.New(smrRoot, params(g, id))
		if err != nil {
			return nil, err
		}
		if o.Broken == "order-first-propose" {
			return &firstProposeOrderer{Engine: e}, nil
		}
		return e, nil
	}
	s.Recover = func(id core.NodeID, g core.Group, recs []core.Record) (core.Protocol, error) {
		e, err := hybrid.New(smrRoot, params(g, id))
		if err != nil || o.Broken == "restart-forgets" {
			return e, err // broken: ignores what it persisted
		}
		return e, e.Recover(recs)
	}
	s.Start, s.Check, s.Terminated = startRequests, checkOrder, orderTerminated
	return s
}

// SMRRoot is the hybrid-smr suite's engine instance.
var SMRRoot = smrRoot

// startRequests submits 1–4 requests, each to a random set of replicas
// with at least f+1 correct ones (often all of them).
func startRequests(c *sim.Cluster) {
	correct := c.Correct()
	k := 1 + c.Rng.IntN(4)
	for i := 0; i < k; i++ {
		req := fmt.Appendf(nil, "ok:c%d-%d", i, c.Rng.IntN(1000))
		to := map[core.NodeID]bool{}
		perm := c.Rng.Perm(len(correct))
		for _, p := range perm[:c.Group.F()+1+c.Rng.IntN(len(correct)-c.Group.F())] {
			to[correct[p]] = true
		}
		for _, id := range c.Group.Members() {
			if to[id] || (!c.IsCorrect(id) && c.Rng.IntN(2) == 0) {
				c.Input(id, core.Input{Instance: smrRoot, Value: bytes.Clone(req)})
			}
		}
	}
}

func batchesOf(c *sim.Cluster, id core.NodeID) []*wire.Batch {
	var out []*wire.Batch
	for _, d := range c.Deliveries(id) {
		if b, ok := d.Value.(*wire.Batch); ok {
			out = append(out, b)
		}
	}
	return out
}

func renderBatch(b *wire.Batch) string {
	parts := make([]string, len(b.Requests))
	for i, r := range b.Requests {
		parts[i] = string(r)
	}
	return fmt.Sprintf("%d:[%s]", b.Seq, strings.Join(parts, " "))
}

// checkOrder: agreement/total order, consecutive sequence numbers,
// integrity of every batch.
func checkOrder(c *sim.Cluster) []string {
	var v []string
	var ref []*wire.Batch
	var refBy core.NodeID
	for _, id := range c.Correct() {
		bs := batchesOf(c, id)
		for i, b := range bs {
			if b.Seq != uint64(i+1) {
				v = append(v, fmt.Sprintf("order: replica %d delivered batch %d at position %d", id, b.Seq, i+1))
				break
			}
			seen := map[string]bool{}
			for _, r := range b.Requests {
				if !hybridValid(r) {
					v = append(v, fmt.Sprintf("integrity: replica %d ordered invalid request %q", id, r))
				}
				if seen[string(r)] {
					v = append(v, fmt.Sprintf("integrity: replica %d ordered %q twice in batch %d", id, r, b.Seq))
				}
				seen[string(r)] = true
			}
		}
		for i := 0; i < len(bs) && i < len(ref); i++ {
			if renderBatch(bs[i]) != renderBatch(ref[i]) {
				v = append(v, fmt.Sprintf("total order: batch %d is %.60s at %d but %.60s at %d", i+1, renderBatch(ref[i]), refBy, renderBatch(bs[i]), id))
				break
			}
		}
		if len(bs) > len(ref) {
			ref, refBy = bs, id
		}
	}
	return v
}

// orderTerminated: every request submitted to a correct replica is
// ordered by every correct replica, and all have delivered alike.
func orderTerminated(c *sim.Cluster) bool {
	correct := c.Correct()
	count := -1
	for _, id := range correct {
		bs := batchesOf(c, id)
		if count >= 0 && len(bs) != count {
			return false
		}
		count = len(bs)
		have := map[string]bool{}
		for _, b := range bs {
			for _, r := range b.Requests {
				have[string(r)] = true
			}
		}
		for _, s := range correct {
			for _, in := range c.Inputs(s) {
				if !have[string(in.Value.([]byte))] {
					return false
				}
			}
		}
	}
	return true
}

// firstProposeOrderer is a deliberately broken engine that orders, per
// epoch, the first non-empty batch it receives, without waiting for the
// TTCB's agreement.
type firstProposeOrderer struct {
	*hybrid.Engine
	seq  uint64
	done map[uint64]bool
}

func (o *firstProposeOrderer) Step(ev core.Event, out *core.Output) error {
	var scratch core.Output
	if err := o.Engine.Step(ev, &scratch); err != nil {
		return err
	}
	forward(&scratch, out)
	if o.done == nil {
		o.done = map[uint64]bool{}
	}
	if e, ok := ev.(core.Message); ok {
		if m, err := hybrid.Decode(e.Payload, hybrid.Limits{MaxRequest: 1 << 20, MaxRequests: 1 << 10, MaxN: 64}); err == nil &&
			m.Kind == hybrid.KindPropose && len(m.Requests) > 0 && !o.done[m.Epoch] {
			o.done[m.Epoch] = true
			o.seq++
			out.Deliver(smrRoot, &wire.Batch{Seq: o.seq, Requests: m.Requests})
		}
	}
	return nil
}

func init() { register("hybrid-amcast", HybridAMulticast) }

// HybridAMulticast is the suite for atomic multicast on vector consensus
// (n ≥ 3f+1), with the checks of hybrid-smr (it meets the same contract).
func HybridAMulticast(o Options) *sim.Suite {
	s := HybridSMR(o)
	s.Name, s.Resilience = "hybrid-amcast", core.Async
	s.NewReplica = func(id core.NodeID, g core.Group) (core.Protocol, error) {
		return hybrid.NewAMulticast(smrRoot, hybrid.DefaultAMParams(g, id, hybridValid))
	}
	return s
}
