package ttcb_test

import (
	"testing"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/sim"
	"github.com/maftia/maftia/ttcb"
)

// simService adapts the Model to the simulator's local-service interface
// (ADR 0001 §6); Suite.Services can return
// map[string]sim.Service{ttcb.ServiceName: simService{m}}.
type simService struct{ m *ttcb.Model }

var _ sim.Service = simService{}

func (s simService) Submit(now uint64, from core.NodeID, req core.ServiceRequest) {
	s.m.Submit(now, from, req)
}

func (s simService) Advance(now uint64) []sim.ServiceDelivery {
	rs := s.m.Advance(now)
	out := make([]sim.ServiceDelivery, len(rs))
	for i, r := range rs {
		out[i] = sim.ServiceDelivery{To: r.To, Reply: r.Reply}
	}
	return out
}

// The adapter delivers the model's replies to the right replicas.
func TestModelAsSimService(t *testing.T) {
	m, err := ttcb.NewModel(ttcb.DefaultModelParams())
	if err != nil {
		t.Fatal(err)
	}
	var svc sim.Service = simService{m}
	elist := []ttcb.EntityID{1, 2}
	for _, e := range elist {
		svc.Submit(0, e, core.ServiceRequest{Instance: "hyb:1", Service: ttcb.ServiceName, Tag: 1,
			Request: ttcb.TBAPropose{Elist: elist, TStart: 5, Decision: ttcb.DecisionRMulticast, Value: ttcb.Value{9}}})
		svc.Submit(0, e, core.ServiceRequest{Instance: "hyb:1", Service: ttcb.ServiceName, Tag: 2,
			Request: ttcb.TBADecide{Tag: ttcb.ExecutionTag(elist, 5, ttcb.DecisionRMulticast)}})
	}
	if got := len(svc.Advance(0)); got != 2 {
		t.Fatalf("%d proposal acknowledgements", got)
	}
	ds := svc.Advance(5 + ttcb.DefaultModelParams().TBA)
	if len(ds) != 2 || ds[0].To != 1 || ds[1].To != 2 {
		t.Fatalf("deliveries %+v", ds)
	}
	for _, d := range ds {
		if r := d.Reply.Reply.(ttcb.TBAResult); !r.Decided || r.Value != (ttcb.Value{9}) || r.ProposedAny != 0b11 {
			t.Fatalf("result %+v", r)
		}
	}
}
