package sim

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"

	"github.com/maftia/maftia/core"
)

// Behaviour turns a correct core into a Byzantine one.
type Behaviour interface {
	Name() string
	Wrap(id core.NodeID, inner core.Protocol, ctx *ByzContext) core.Protocol
}

// ByzContext is what a Byzantine wrapper may use: its own randomness, the
// protocol's mutator and a way to build a second copy (Twins).
type ByzContext struct {
	Group      core.Group
	Rng        *rand.Rand
	Mutate     func(rng *rand.Rand, inst core.InstanceID, payload []byte) []byte
	NewReplica func() (core.Protocol, error)
	AltInput   func(rng *rand.Rand, in core.Input) core.Input
}

func (x *ByzContext) mutate(inst core.InstanceID, p []byte) []byte {
	if x.Mutate == nil {
		return randomBytes(x.Rng, 1+x.Rng.IntN(32))
	}
	return x.Mutate(x.Rng, inst, p)
}

func randomBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// ParseBehaviour parses "silent", "crash:K", "equivocate", "wrong",
// "replay", "garbage" or "twins".
func ParseBehaviour(s string) (Behaviour, error) {
	name, arg, _ := strings.Cut(s, ":")
	switch name {
	case "silent":
		return Silent{}, nil
	case "crash":
		k := 20
		if arg != "" {
			v, err := strconv.Atoi(arg)
			if err != nil || v < 0 {
				return nil, fmt.Errorf("sim: crash needs a step count, got %q", arg)
			}
			k = v
		}
		return Crash{After: k}, nil
	case "equivocate":
		return Equivocate{}, nil
	case "wrong":
		return Wrong{}, nil
	case "replay":
		return Replay{}, nil
	case "garbage":
		return Garbage{}, nil
	case "twins":
		return Twins{}, nil
	}
	return nil, fmt.Errorf("sim: unknown Byzantine behaviour %q (want silent, crash:K, equivocate, wrong, replay, garbage, twins)", s)
}

// AllBehaviours is every behaviour, for suites that test each.
func AllBehaviours() []Behaviour {
	return []Behaviour{Silent{}, Crash{After: 3}, Crash{After: 15}, Equivocate{}, Wrong{}, Replay{}, Garbage{}, Twins{}}
}

// Silent never sends anything.
type Silent struct{}

func (Silent) Name() string { return "silent" }
func (Silent) Wrap(id core.NodeID, inner core.Protocol, _ *ByzContext) core.Protocol {
	return silentCore{}
}

type silentCore struct{}

func (silentCore) Step(core.Event, *core.Output) error { return nil }

// Crash behaves correctly for After steps, then stops.
type Crash struct{ After int }

func (c Crash) Name() string { return fmt.Sprintf("crash:%d", c.After) }
func (c Crash) Wrap(id core.NodeID, inner core.Protocol, _ *ByzContext) core.Protocol {
	return &crashCore{inner: inner, left: c.After}
}

type crashCore struct {
	inner core.Protocol
	left  int
}

func (c *crashCore) Step(ev core.Event, out *core.Output) error {
	if c.left <= 0 {
		return nil
	}
	c.left--
	return c.inner.Step(ev, out)
}

// transform runs inner and rewrites every send through f, which appends
// the sends it wants to the real output.
type transform struct {
	inner   core.Protocol
	scratch core.Output
	f       func(s core.Send, out *core.Output)
}

func (t *transform) Step(ev core.Event, out *core.Output) error {
	t.scratch.Reset()
	if err := t.inner.Step(ev, &t.scratch); err != nil {
		return nil // a Byzantine replica that broke itself just carries on
	}
	out.Persist = append(out.Persist, t.scratch.Persist...)
	out.Deliveries = append(out.Deliveries, t.scratch.Deliveries...)
	out.Timers = append(out.Timers, t.scratch.Timers...)
	out.Requests = append(out.Requests, t.scratch.Requests...)
	for _, s := range t.scratch.Sends {
		t.f(s, out)
	}
	return nil
}

// Equivocate sends each broadcast as two versions: the correct one to a
// random half of the group and a mutated one to the rest.
type Equivocate struct{}

func (Equivocate) Name() string { return "equivocate" }
func (Equivocate) Wrap(id core.NodeID, inner core.Protocol, x *ByzContext) core.Protocol {
	return &transform{inner: inner, f: func(s core.Send, out *core.Output) {
		if s.To != core.Everyone {
			out.SendTo(s.To, s.Instance, s.Payload)
			return
		}
		alt := x.mutate(s.Instance, s.Payload)
		members := x.Group.Members()
		x.Rng.Shuffle(len(members), func(i, j int) { members[i], members[j] = members[j], members[i] })
		for i, to := range members {
			if i < len(members)/2 {
				out.SendTo(to, s.Instance, s.Payload)
			} else {
				out.SendTo(to, s.Instance, alt)
			}
		}
	}}
}

// Wrong replaces every message with a syntactically valid but semantically
// wrong variant (another value, round±1, a swapped field).
type Wrong struct{}

func (Wrong) Name() string { return "wrong" }
func (Wrong) Wrap(id core.NodeID, inner core.Protocol, x *ByzContext) core.Protocol {
	return &transform{inner: inner, f: func(s core.Send, out *core.Output) {
		out.Sends = append(out.Sends, core.Send{To: s.To, Instance: s.Instance, Payload: x.mutate(s.Instance, s.Payload)})
	}}
}

// Garbage sends random bytes alongside (and sometimes instead of) its
// messages, exercising every decoder with authenticated junk.
type Garbage struct{}

func (Garbage) Name() string { return "garbage" }
func (Garbage) Wrap(id core.NodeID, inner core.Protocol, x *ByzContext) core.Protocol {
	return &transform{inner: inner, f: func(s core.Send, out *core.Output) {
		if x.Rng.IntN(2) == 0 {
			out.Sends = append(out.Sends, s)
		}
		out.Sends = append(out.Sends, core.Send{To: s.To, Instance: s.Instance, Payload: randomBytes(x.Rng, x.Rng.IntN(80))})
	}}
}

// Replay behaves correctly but also re-sends old messages it sent or
// received, to random replicas, sometimes into another instance it has
// seen (cross-instance replay).
type Replay struct{}

func (Replay) Name() string { return "replay" }
func (Replay) Wrap(id core.NodeID, inner core.Protocol, x *ByzContext) core.Protocol {
	r := &replayCore{x: x}
	r.transform = transform{inner: inner, f: func(s core.Send, out *core.Output) {
		out.Sends = append(out.Sends, s)
		r.remember(s.Instance, s.Payload)
	}}
	return r
}

type replayCore struct {
	transform
	x       *ByzContext
	history []core.Send
}

const replayHistory = 64

func (r *replayCore) remember(inst core.InstanceID, p []byte) {
	if len(r.history) < replayHistory {
		r.history = append(r.history, core.Send{Instance: inst, Payload: p})
		return
	}
	r.history[r.x.Rng.IntN(replayHistory)] = core.Send{Instance: inst, Payload: p}
}

func (r *replayCore) Step(ev core.Event, out *core.Output) error {
	if m, ok := ev.(core.Message); ok {
		r.remember(m.Instance, m.Payload)
	}
	if err := r.transform.Step(ev, out); err != nil {
		return err
	}
	if len(r.history) == 0 || r.x.Rng.IntN(3) != 0 {
		return nil
	}
	old := r.history[r.x.Rng.IntN(len(r.history))]
	inst := old.Instance
	if r.x.Rng.IntN(2) == 0 {
		inst = r.history[r.x.Rng.IntN(len(r.history))].Instance
	}
	to := core.NodeID(1 + r.x.Rng.IntN(r.x.Group.N()))
	out.SendTo(to, inst, old.Payload)
	return nil
}

// Twins runs two copies of the replica with the same identity (and keys):
// both receive every message, the second gets a different input, and both
// send as the same replica — equivocation with validly formed messages
// (Bano et al., "Twins", 2020).
type Twins struct{}

func (Twins) Name() string { return "twins" }
func (Twins) Wrap(id core.NodeID, inner core.Protocol, x *ByzContext) core.Protocol {
	twin, err := x.NewReplica()
	if err != nil {
		return inner
	}
	return &twinsCore{a: inner, b: twin, x: x}
}

type twinsCore struct {
	a, b core.Protocol
	x    *ByzContext
}

func (t *twinsCore) Step(ev core.Event, out *core.Output) error {
	_ = t.a.Step(ev, out)
	if in, ok := ev.(core.Input); ok && t.x.AltInput != nil {
		ev = t.x.AltInput(t.x.Rng, in)
	}
	_ = t.b.Step(ev, out)
	return nil
}

// BehaviourNames renders a Byzantine assignment deterministically.
func BehaviourNames(byz map[core.NodeID]Behaviour) string {
	ids := make([]int, 0, len(byz))
	for id := range byz {
		ids = append(ids, int(id))
	}
	sort.Ints(ids)
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = fmt.Sprintf("%d:%s", id, byz[core.NodeID(id)].Name())
	}
	return "(" + strings.Join(parts, ",") + ")"
}
