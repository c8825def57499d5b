package sim

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/wire"
)

// Packet is a message in flight.
type Packet struct {
	ID       uint64 // send order, unique per cluster
	From, To core.NodeID
	Instance core.InstanceID
	Payload  []byte
}

// Service is a local service reachable through core.Output.Request (the
// TTCB model). It is driven by abstract time: the cluster's step counter.
type Service interface {
	Submit(now uint64, from core.NodeID, req core.ServiceRequest)
	Advance(now uint64) []ServiceDelivery
}

// ServiceDelivery is a reply due to a replica.
type ServiceDelivery struct {
	To    core.NodeID
	Reply core.ServiceReply
}

// Delivered is one delivery observed at a replica.
type Delivered struct {
	Step     uint64
	Instance core.InstanceID
	Value    any
}

type timer struct {
	at   uint64
	node core.NodeID
	ev   core.TimerFired
}

type replica struct {
	id      core.NodeID
	core    core.Protocol
	crashed bool
	store   []core.Record
}

// Stats counts what a run did.
type Stats struct {
	Steps      uint64
	Messages   uint64 // packets sent (a broadcast counts n)
	Bytes      uint64
	Delivered  uint64 // packets delivered to replicas
	Dropped    uint64 // packets dropped by the adversary or to crashed replicas
	Deliveries uint64 // outputs delivered by replicas
	MaxPending int
	Holds      int // correct replicas whose traffic the adversary held back
	Partitions int // temporary partitions of the correct replicas
}

// Cluster is a simulated group of replicas and the network between them.
type Cluster struct {
	Group     core.Group
	Suite     *Suite
	Rng       *rand.Rand
	Byzantine map[core.NodeID]Behaviour
	Services  map[string]Service

	replicas   []*replica
	pending    []*Packet
	nextID     uint64
	timers     []timer
	deliveries map[core.NodeID][]Delivered
	evidence   []Accusation
	inputs     map[core.NodeID][]core.Input
	stats      Stats
	trace      *strings.Builder
	out        core.Output
	failure    error
}

// NewCluster builds the replicas of suite for group g. byz maps replicas to
// Byzantine behaviours; trace enables the readable trace.
func NewCluster(s *Suite, g core.Group, seed uint64, byz map[core.NodeID]Behaviour, trace bool) (*Cluster, error) {
	c := &Cluster{
		Group: g, Suite: s,
		Rng:        rand.New(rand.NewPCG(seed, 0x6d61667469610a)),
		Byzantine:  byz,
		Services:   map[string]Service{},
		deliveries: map[core.NodeID][]Delivered{},
		inputs:     map[core.NodeID][]core.Input{},
	}
	if trace {
		c.trace = &strings.Builder{}
	}
	if s.Setup != nil {
		if err := s.Setup(g, seed); err != nil {
			return nil, fmt.Errorf("sim: setup: %w", err)
		}
	}
	if s.Services != nil {
		for name, svc := range s.Services(g, seed) {
			c.Services[name] = svc
		}
	}
	for _, id := range g.Members() {
		p, err := s.NewReplica(id, g)
		if err != nil {
			return nil, fmt.Errorf("sim: replica %d: %w", id, err)
		}
		if b, ok := byz[id]; ok {
			p = b.Wrap(id, p, &ByzContext{
				Group: g, Rng: rand.New(rand.NewPCG(seed, uint64(id))),
				Mutate: s.Mutate, NewReplica: func() (core.Protocol, error) { return s.NewReplica(id, g) },
				AltInput: s.AltInput,
			})
		}
		c.replicas = append(c.replicas, &replica{id: id, core: p})
	}
	return c, nil
}

// Correct lists the replicas that are not Byzantine.
func (c *Cluster) Correct() []core.NodeID {
	var ids []core.NodeID
	for _, id := range c.Group.Members() {
		if _, byz := c.Byzantine[id]; !byz {
			ids = append(ids, id)
		}
	}
	return ids
}

// IsCorrect reports whether id is not Byzantine.
func (c *Cluster) IsCorrect(id core.NodeID) bool {
	_, byz := c.Byzantine[id]
	return !byz
}

// Deliveries returns what replica id delivered, in order.
func (c *Cluster) Deliveries(id core.NodeID) []Delivered { return c.deliveries[id] }

// Inputs returns the inputs given to replica id.
func (c *Cluster) Inputs(id core.NodeID) []core.Input { return c.inputs[id] }

// Accusation is evidence raised by one replica.
type Accusation struct {
	By core.NodeID
	core.Evidence
}

// Evidence returns all evidence raised so far.
func (c *Cluster) Evidence() []Accusation { return c.evidence }

// Stats returns the counters.
func (c *Cluster) Stats() Stats { return c.stats }

// Pending returns the in-flight packets (read-only).
func (c *Cluster) Pending() []*Packet { return c.pending }

// Trace returns the readable trace (empty if tracing is off).
func (c *Cluster) Trace() string {
	if c.trace == nil {
		return ""
	}
	return c.trace.String()
}

// Err is the first local-invariant error a correct core returned.
func (c *Cluster) Err() error { return c.failure }

func (c *Cluster) logf(format string, args ...any) {
	if c.trace != nil {
		fmt.Fprintf(c.trace, "%5d  ", c.stats.Steps)
		fmt.Fprintf(c.trace, format, args...)
		c.trace.WriteByte('\n')
	}
}

// Input hands a local input to replica id.
func (c *Cluster) Input(id core.NodeID, in core.Input) {
	c.inputs[id] = append(c.inputs[id], in)
	c.logf("input  %d %s %v", id, in.Instance, describeValue(in.Value))
	c.step(id, in)
}

// Crash stops replica id: it takes no more steps and its traffic is dropped.
func (c *Cluster) Crash(id core.NodeID) {
	c.replicas[id-1].crashed = true
	c.logf("crash  %d", id)
}

// Crashed reports whether replica id is crashed.
func (c *Cluster) Crashed(id core.NodeID) bool { return c.replicas[id-1].crashed }

// Restart recreates replica id from its persisted records (the suite must
// support Recover) and lets it take steps again.
func (c *Cluster) Restart(id core.NodeID) error {
	if c.Suite.Recover == nil {
		return fmt.Errorf("sim: suite %s cannot recover replicas", c.Suite.Name)
	}
	r := c.replicas[id-1]
	p, err := c.Suite.Recover(id, c.Group, r.store)
	if err != nil {
		return err
	}
	r.core, r.crashed = p, false
	c.logf("restart %d (%d records)", id, len(r.store))
	return nil
}

func (c *Cluster) step(id core.NodeID, ev core.Event) {
	r := c.replicas[id-1]
	if r.crashed {
		return
	}
	c.stats.Steps++
	c.out.Reset()
	if err := r.core.Step(ev, &c.out); err != nil {
		if c.IsCorrect(id) && c.failure == nil {
			c.failure = fmt.Errorf("replica %d: %w", id, err)
			c.logf("HALT   %d: %v", id, err)
		}
		r.crashed = true
		return
	}
	c.apply(id, &c.out)
}

// apply performs one Output: persist, then send, deliver, timers, requests.
func (c *Cluster) apply(id core.NodeID, out *core.Output) {
	r := c.replicas[id-1]
	r.store = append(r.store, out.Persist...)
	for _, s := range out.Sends {
		if s.To == core.Everyone {
			for _, to := range c.Group.Members() {
				c.send(id, to, s.Instance, s.Payload)
			}
		} else if c.Group.Contains(s.To) {
			c.send(id, s.To, s.Instance, s.Payload)
		}
	}
	for _, d := range out.Deliveries {
		c.stats.Deliveries++
		c.deliveries[id] = append(c.deliveries[id], Delivered{Step: c.stats.Steps, Instance: d.Instance, Value: d.Value})
		c.logf("DELIVER %d %s %v", id, d.Instance, describeValue(d.Value))
	}
	for _, t := range out.Timers {
		c.setTimer(id, t)
	}
	for _, q := range out.Requests {
		svc, ok := c.Services[q.Service]
		if !ok {
			if c.IsCorrect(id) && c.failure == nil {
				c.failure = fmt.Errorf("replica %d requested unknown service %q", id, q.Service)
			}
			continue
		}
		svc.Submit(c.stats.Steps, id, q)
	}
	for _, e := range out.Evidence {
		c.evidence = append(c.evidence, Accusation{By: id, Evidence: e})
		c.logf("EVIDENCE by %d against %d: %s %s", id, e.Accused, e.Kind, e.Detail)
	}
}

func (c *Cluster) send(from, to core.NodeID, inst core.InstanceID, payload []byte) {
	c.nextID++
	c.stats.Messages++
	c.stats.Bytes += uint64(len(payload) + len(inst) + 8)
	c.pending = append(c.pending, &Packet{ID: c.nextID, From: from, To: to, Instance: inst, Payload: payload})
	if len(c.pending) > c.stats.MaxPending {
		c.stats.MaxPending = len(c.pending)
	}
}

func (c *Cluster) setTimer(id core.NodeID, t core.TimerOp) {
	kept := c.timers[:0]
	for _, x := range c.timers {
		if !(x.node == id && x.ev.Instance == t.Instance && x.ev.Timer == t.Timer) {
			kept = append(kept, x)
		}
	}
	c.timers = kept
	if t.After > 0 {
		c.timers = append(c.timers, timer{at: c.stats.Steps + t.After, node: id, ev: core.TimerFired{Instance: t.Instance, Timer: t.Timer}})
	}
}

// Deliver hands pending packet i to its destination.
func (c *Cluster) Deliver(i int) {
	p := c.pending[i]
	c.pending = append(c.pending[:i], c.pending[i+1:]...)
	if c.replicas[p.To-1].crashed {
		c.stats.Dropped++
		return
	}
	c.stats.Delivered++
	c.logf("recv   %d→%d %s %s", p.From, p.To, p.Instance, c.describe(p))
	c.step(p.To, core.Message{From: p.From, Instance: p.Instance, Payload: p.Payload})
}

// Drop removes pending packet i without delivering it.
func (c *Cluster) Drop(i int) {
	p := c.pending[i]
	c.pending = append(c.pending[:i], c.pending[i+1:]...)
	c.stats.Dropped++
	c.logf("drop   %d→%d %s %s", p.From, p.To, p.Instance, c.describe(p))
}

// Tick advances abstract time by one step without delivering anything,
// firing due timers and service replies.
func (c *Cluster) Tick() {
	c.stats.Steps++
	c.fireDue()
}

func (c *Cluster) fireDue() {
	now := c.stats.Steps
	if len(c.timers) > 0 {
		var due []timer
		kept := c.timers[:0]
		for _, t := range c.timers {
			if t.at <= now {
				due = append(due, t)
			} else {
				kept = append(kept, t)
			}
		}
		c.timers = kept
		sort.SliceStable(due, func(i, j int) bool { return due[i].at < due[j].at })
		for _, t := range due {
			c.logf("timer  %d %s %s", t.node, t.ev.Instance, t.ev.Timer)
			c.step(t.node, t.ev)
		}
	}
	names := make([]string, 0, len(c.Services))
	for name := range c.Services {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		for _, d := range c.Services[name].Advance(now) {
			c.logf("svc    %s→%d %s tag=%d", name, d.To, d.Reply.Instance, d.Reply.Tag)
			c.step(d.To, d.Reply)
		}
	}
}

// PendingTimersOrServices reports whether time alone can still produce events.
func (c *Cluster) hasTimers() bool { return len(c.timers) > 0 }

func (c *Cluster) describe(p *Packet) string {
	if c.Suite.Describe == nil {
		return fmt.Sprintf("(%dB)", len(p.Payload))
	}
	return c.Suite.Describe(p.Instance, p.Payload)
}

func describeValue(v any) string { return DescribeValue(v) }

// DescribeValue renders a delivered or input value for traces. Ordered
// batches (*wire.Batch) are rendered here rather than by protobuf's text
// format, whose spacing protobuf-go varies between builds on purpose.
func DescribeValue(v any) string {
	switch x := v.(type) {
	case *wire.Batch:
		reqs := make([]string, len(x.Requests))
		for i, r := range x.Requests {
			reqs[i] = DescribeValue(r)
		}
		return fmt.Sprintf("batch %d [%s]", x.Seq, strings.Join(reqs, " "))
	case []byte:
		if len(x) > 24 {
			return fmt.Sprintf("%q…(%dB)", x[:16], len(x))
		}
		return fmt.Sprintf("%q", x)
	case fmt.Stringer:
		return x.String()
	}
	return fmt.Sprintf("%v", v)
}
