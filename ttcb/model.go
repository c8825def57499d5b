package ttcb

import (
	"cmp"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/maftia/maftia/core"
)

// ModelParams configure the deterministic TTCB model. Times are ticks.
type ModelParams struct {
	TBA          uint64 // T_TBA: results are available at tstart+TBA
	Retention    uint64 // results kept this long after tstart+TBA
	Horizon      uint64 // tstart at most now+Horizon
	MaxExecs     int
	MaxPerEntity int
	RateEvery    uint64 // admission control: one request per RateEvery ticks...
	RateBurst    uint64 // ...with this burst (RateEvery 0: unlimited)
	MaxMeasures  int    // open duration measurements per entity
	Seed         uint64 // the model's trusted random numbers
	// Attest makes the model sign every result it answers, with host
	// id's module key ModelModuleKey(id), as real modules do.
	Attest bool
}

// DefaultModelParams returns parameters suited to the simulator.
func DefaultModelParams() ModelParams {
	return ModelParams{TBA: 10, Retention: 10_000, Horizon: 100_000, MaxExecs: 100_000,
		MaxPerEntity: 1024, RateEvery: 0, RateBurst: 1024, MaxMeasures: 256, Seed: 1}
}

// Check validates the parameters.
func (p ModelParams) Check() error {
	if p.TBA == 0 || p.Retention == 0 || p.Horizon == 0 || p.MaxExecs <= 0 || p.MaxPerEntity <= 0 || p.MaxMeasures <= 0 {
		return fmt.Errorf("%w: model params %+v", ErrConfig, p)
	}
	if p.RateEvery != 0 && p.RateBurst == 0 {
		return fmt.Errorf("%w: rate burst 0", ErrConfig)
	}
	return nil
}

// Reply is a TTCB answer the Model hands to entity To at time At.
type Reply struct {
	To    core.NodeID
	At    uint64
	Reply core.ServiceReply
}

type pendingReply struct {
	Reply
	seq  uint64
	exec *execution // a TBADecide waiting for its deadline
	from EntityID
	req  core.ServiceRequest
}

type measure struct{ start, bound uint64 }

// Model is a deterministic model of the whole distributed TTCB for the
// simulator: one logical trusted component driven by abstract time. It
// keeps the service's synchronous guarantees regardless of how the payload
// system is scheduled: a proposal submitted at now < tstart is counted, and
// every TBADecide for an execution is answered with the same TBAResult at
// time ≥ tstart+TBA (the decision-function code is the service's own).
// A crashed host's module answers nothing until Restart.
//
// Model is not safe for concurrent use; the simulator steps it.
type Model struct {
	p        ModelParams
	t        *table
	now      uint64
	seq      uint64
	queue    []pendingReply
	crashed  map[core.NodeID]bool
	buckets  map[core.NodeID]*bucket
	measures map[core.NodeID]map[uint64]measure
	nextMeas uint64
	rng      *rand.ChaCha8
	keys     map[uint32]ed25519.PrivateKey
	withhold func(to core.NodeID, k ExecKey) bool
	held     map[core.NodeID][]core.ServiceRequest // made while crashed, for Restart
}

// NewModel returns a model, or an error for invalid parameters.
func NewModel(p ModelParams) (*Model, error) {
	if err := p.Check(); err != nil {
		return nil, err
	}
	var seed [32]byte
	for i := range 8 {
		seed[i] = byte(p.Seed >> (8 * i))
	}
	return &Model{
		p: p,
		t: newTable(tableLimits{Horizon: p.Horizon, Retention: p.Retention,
			MaxExecs: p.MaxExecs, MaxPerEntity: p.MaxPerEntity}),
		crashed:  make(map[core.NodeID]bool),
		buckets:  make(map[core.NodeID]*bucket),
		measures: make(map[core.NodeID]map[uint64]measure),
		rng:      rand.NewChaCha8(seed),
	}, nil
}

// Crash crashes the TTCB module of host id: requests from id are held
// (submitted at Restart) and replies to it are discarded until Restart. Proposals it already
// made stay counted (as if the module had flooded them before crashing).
func (m *Model) Crash(id core.NodeID) { m.crashed[id] = true }

// Restart brings host id's module back. The requests host id made while
// it was down are submitted now, as the runtime's TTCB adapter repeats
// calls on a new session after its module restarted.
func (m *Model) Restart(id core.NodeID) {
	delete(m.crashed, id)
	reqs := m.held[id]
	delete(m.held, id)
	for _, r := range reqs {
		m.Submit(m.now, id, r)
	}
}

func (m *Model) reply(now uint64, to core.NodeID, req core.ServiceRequest, v any) {
	m.seq++
	m.queue = append(m.queue, pendingReply{seq: m.seq, req: req, Reply: Reply{To: to, At: now,
		Reply: core.ServiceReply{Instance: req.Instance, Service: ServiceName, Tag: req.Tag, Reply: v}}})
}

func (m *Model) refuse(now uint64, to core.NodeID, req core.ServiceRequest, err error) {
	m.reply(now, to, req, Refused{Err: err})
}

// Submit hands the model a request from entity from at time now (time
// never goes backwards: an earlier now is treated as the latest seen).
func (m *Model) Submit(now uint64, from core.NodeID, req core.ServiceRequest) {
	now = max(now, m.now)
	m.now = now
	if from == 0 {
		return
	}
	if m.crashed[from] {
		m.hold(from, req)
		return
	}
	if req.Service != ServiceName {
		m.refuse(now, from, req, fmt.Errorf("%w: service %q", ErrBadRequest, req.Service))
		return
	}
	b := m.buckets[from]
	if b == nil {
		b = &bucket{}
		m.buckets[from] = b
	}
	if !b.take(now, m.p.RateEvery, m.p.RateBurst) {
		m.refuse(now, from, req, ErrRateLimited)
		return
	}
	readyAt := func(tstart uint64) uint64 { return tstart + m.p.TBA }
	switch r := req.Request.(type) {
	case TBAPropose:
		out, err := m.t.propose(now, from, r, readyAt)
		if err != nil {
			m.refuse(now, from, req, err)
			return
		}
		m.reply(now, from, req, out)
	case TBADecide:
		e, err := m.t.lookup(from, r.Tag)
		if err != nil {
			m.refuse(now, from, req, err)
			return
		}
		m.seq++
		m.queue = append(m.queue, pendingReply{seq: m.seq, req: req, exec: e, from: from, Reply: Reply{To: from,
			At: max(now, e.decideAt), Reply: core.ServiceReply{Instance: req.Instance, Service: ServiceName, Tag: req.Tag}}})
	case GetTimestamp:
		m.reply(now, from, req, Timestamp{Time: now})
	case GetRandom:
		if r.N < 1 || r.N > MaxRandom {
			m.refuse(now, from, req, fmt.Errorf("%w: %d random bytes", ErrBadRequest, r.N))
			return
		}
		buf := make([]byte, r.N)
		_, _ = m.rng.Read(buf)
		m.reply(now, from, req, Random{Bytes: buf})
	case StartMeasure:
		ms := m.measures[from]
		if ms == nil {
			ms = make(map[uint64]measure)
			m.measures[from] = ms
		}
		if len(ms) >= m.p.MaxMeasures {
			m.refuse(now, from, req, fmt.Errorf("%w: %d open measurements", ErrOverloaded, len(ms)))
			return
		}
		m.nextMeas++
		ms[m.nextMeas] = measure{start: now, bound: r.Bound}
		m.reply(now, from, req, MeasureStarted{ID: m.nextMeas, Start: now})
	case StopMeasure:
		ms, ok := m.measures[from][r.ID]
		if !ok {
			m.refuse(now, from, req, ErrUnknownMeasure)
			return
		}
		delete(m.measures[from], r.ID)
		d := now - ms.start
		m.reply(now, from, req, Measured{Duration: d, TimingFailure: d > ms.bound})
	default:
		m.refuse(now, from, req, fmt.Errorf("%w: request type %T", ErrBadRequest, req.Request))
	}
}

// Advance moves the model to time now: executions whose deadline passed
// are decided, and the replies due by now are returned in a deterministic
// order (by due time, then submission order).
func (m *Model) Advance(now uint64) []Reply {
	now = max(now, m.now)
	m.now = now
	m.t.decideDue(now)
	var due []pendingReply
	m.queue = slices.DeleteFunc(m.queue, func(p pendingReply) bool {
		if p.At > now {
			return false
		}
		due = append(due, p)
		return true
	})
	slices.SortFunc(due, func(a, b pendingReply) int { return cmp.Or(cmp.Compare(a.At, b.At), cmp.Compare(a.seq, b.seq)) })
	out := make([]Reply, 0, len(due))
	for _, p := range due {
		if m.crashed[p.To] {
			m.hold(p.To, p.req) // the caller asks again after the restart
			continue
		}
		if p.exec != nil {
			if r, err := p.exec.resultAt(now); err != nil {
				p.Reply.Reply.Reply = Refused{Err: err}
			} else {
				if m.withhold != nil && m.withhold(p.To, p.exec.key) {
					// The module of host p.To had a timing failure in this
					// execution: an attested withholding instead.
					r = TBAResult{Tag: r.Tag, Withheld: true}
				}
				if m.p.Attest {
					r = Attest(m.moduleKey(uint32(p.To)), uint32(p.To), p.exec.key, r)
				} else if r.Withheld {
					p.Reply.Reply.Reply = Refused{Err: ErrUnavailable}
					out = append(out, p.Reply)
					continue
				}
				p.Reply.Reply.Reply = r
			}
		}
		out = append(out, p.Reply)
	}
	m.t.expire(now)
	return out
}

// NextDue is the earliest time at which Advance has something to return,
// or false if nothing is pending (lets the simulator skip idle ticks).
func (m *Model) NextDue() (uint64, bool) {
	if len(m.queue) == 0 {
		return 0, false
	}
	t := m.queue[0].At
	for _, p := range m.queue[1:] {
		t = min(t, p.At)
	}
	return t, true
}

// ModelModuleKey is the Ed25519 key of host id's module in the model,
// derived from a fixed label so that simulated engines and the model
// agree on it without sharing state (real modules have their own keys).
func ModelModuleKey(id uint32) ed25519.PrivateKey {
	seed := sha256.Sum256(fmt.Appendf(nil, "maftia/ttcb/model-module-key/%d", id))
	return ed25519.NewKeyFromSeed(seed[:])
}

func (m *Model) moduleKey(id uint32) ed25519.PrivateKey {
	if m.keys == nil {
		m.keys = map[uint32]ed25519.PrivateKey{}
	}
	k := m.keys[id]
	if k == nil {
		k = ModelModuleKey(id)
		m.keys[id] = k
	}
	return k
}

// SetWithhold makes the module of host to withhold the results of the
// executions for which f(to, key) is true, as after a timing failure of
// its own there (fault injection for tests; attested when Attest is set,
// else refused with ErrUnavailable).
func (m *Model) SetWithhold(f func(to core.NodeID, k ExecKey) bool) { m.withhold = f }

func (m *Model) hold(id core.NodeID, req core.ServiceRequest) {
	if m.held == nil {
		m.held = map[core.NodeID][]core.ServiceRequest{}
	}
	if len(m.held[id]) < 1<<16 {
		m.held[id] = append(m.held[id], req)
	}
}
