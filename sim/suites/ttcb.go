package suites

import (
	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/sim"
	"github.com/maftia/maftia/ttcb"
)

// ttcbService adapts the deterministic TTCB model (ttcb.Model) to the
// simulator's local-service hook: requests are submitted at the cluster's
// abstract time and replies come back when Advance reaches their due time.
// The TTCB modules are correct (crash-only, synchronous) whatever the
// payload replicas do; Byzantine replicas reach it only through their own
// entity identity, so they can propose anything but cannot speak for
// another replica.
type ttcbService struct{ m *ttcb.Model }

func (s ttcbService) Submit(now uint64, from core.NodeID, req core.ServiceRequest) {
	s.m.Submit(now, from, req)
}

func (s ttcbService) Advance(now uint64) []sim.ServiceDelivery {
	rs := s.m.Advance(now)
	if len(rs) == 0 {
		return nil
	}
	out := make([]sim.ServiceDelivery, len(rs))
	for i, r := range rs {
		out[i] = sim.ServiceDelivery{To: r.To, Reply: r.Reply}
	}
	return out
}

// ttcbModelParams are the TTCB model's parameters in the hybrid suites:
// T_TBA of 10 ticks and results retained far beyond a run's length.
func ttcbModelParams(seed uint64) ttcb.ModelParams {
	p := ttcb.DefaultModelParams()
	p.Retention = 1 << 40
	p.Seed = seed
	return p
}

// ttcbServices builds the run's TTCB model as the "ttcb" service. State,
// if non-nil, receives the model (tests crash modules through it).
func ttcbServices(state *ttcbState) func(core.Group, uint64) map[string]sim.Service {
	return func(_ core.Group, seed uint64) map[string]sim.Service {
		m, err := ttcb.NewModel(ttcbModelParams(seed))
		if err != nil {
			panic(err) // constant parameters
		}
		if state != nil {
			state.model = m
			state.calls = 0
		}
		return map[string]sim.Service{ttcb.ServiceName: &countingService{ttcbService{m}, state}}
	}
}

// ttcbState is per-run state of a hybrid suite: the model and a count of
// block-agreement calls (for benchmarks).
type ttcbState struct {
	model *ttcb.Model
	calls uint64 // TBAPropose requests submitted
}

type countingService struct {
	ttcbService
	st *ttcbState
}

func (c *countingService) Submit(now uint64, from core.NodeID, req core.ServiceRequest) {
	if _, ok := req.Request.(ttcb.TBAPropose); ok && c.st != nil {
		c.st.calls++
	}
	c.ttcbService.Submit(now, from, req)
}

// TBAProposals is the number of block-agreement proposals (TBAPropose
// requests) the last run of a hybrid-rmcast or hybrid-smr suite value
// made, for benchmarks; ok is false for other suites.
func TBAProposals(s *sim.Suite) (n uint64, ok bool) {
	st, ok := s.State.(*ttcbState)
	if !ok {
		return 0, false
	}
	return st.calls, true
}

// TTCBModel is the TTCB model of the last run of a hybrid suite (nil for
// other suites), for tests that inject faults into it.
func TTCBModel(s *sim.Suite) *ttcb.Model {
	if st, ok := s.State.(*ttcbState); ok {
		return st.model
	}
	return nil
}
