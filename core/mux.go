package core

import (
	"errors"
	"fmt"
)

// ErrNotYet is returned by a Factory for an instance that may legitimately
// start later (e.g. a future epoch): its messages are held in the Mux's
// EarlyBuffer until the instance is started.
var ErrNotYet = errors.New("core: instance not started yet")

// ErrNoInstance is returned by a Factory for an instance that will never
// exist here (finished, out of range, or unknown kind): its messages are
// dropped.
var ErrNoInstance = errors.New("core: no such instance")

// Factory creates the core for a child instance on demand.
type Factory func(id InstanceID) (Protocol, error)

// Mux hosts child cores, each owning the subtree of instance IDs below one
// ID of a fixed depth, and routes events to them. It is itself a core, so
// composites nest. Children that report Finished are dropped and their
// later messages discarded.
type Mux struct {
	depth    int
	factory  Factory
	children map[InstanceID]Protocol
	finished map[InstanceID]struct{}
	early    *EarlyBuffer
}

// NewMux returns a Mux whose children are the instance IDs of the given
// depth. Early messages are bounded per sender by maxCount and maxBytes.
func NewMux(depth int, factory Factory, maxCount, maxBytes int) *Mux {
	return &Mux{
		depth:    depth,
		factory:  factory,
		children: make(map[InstanceID]Protocol),
		finished: make(map[InstanceID]struct{}),
		early:    NewEarlyBuffer(maxCount, maxBytes),
	}
}

func eventInstance(ev Event) InstanceID {
	switch e := ev.(type) {
	case Message:
		return e.Instance
	case Input:
		return e.Instance
	case TimerFired:
		return e.Instance
	case ServiceReply:
		return e.Instance
	}
	return ""
}

// Step routes ev to the child that owns its instance, creating it if the
// factory allows.
func (m *Mux) Step(ev Event, out *Output) error {
	inst := eventInstance(ev)
	if inst.Depth() < m.depth {
		if msg, ok := ev.(Message); ok {
			out.Accuse(msg.From, Malformed, inst, "instance id too shallow for this host")
			return nil
		}
		return fmt.Errorf("core: local event for instance %q above host depth %d", inst, m.depth)
	}
	key := inst.Prefix(m.depth)
	if _, done := m.finished[key]; done {
		if _, isMsg := ev.(Message); isMsg {
			return nil // late message for a finished instance
		}
		return fmt.Errorf("core: local event for finished instance %q", key)
	}
	child, created, err := m.child(key)
	if err != nil {
		msg, isMsg := ev.(Message)
		switch {
		case !isMsg:
			return fmt.Errorf("core: cannot start %q for a local event: %w", key, err)
		case errors.Is(err, ErrNotYet):
			if !m.early.Add(msg) {
				out.Accuse(msg.From, Flooding, inst, "early-message buffer full")
			}
			return nil
		default:
			return nil
		}
	}
	if created {
		// Messages that arrived before the instance could start come first.
		for _, early := range m.early.Take(key) {
			if err := child.Step(early, out); err != nil {
				return err
			}
		}
	}
	if err := child.Step(ev, out); err != nil {
		return err
	}
	m.reap(key, child)
	return nil
}

// Start creates the child for id now (if not already running) and replays
// the early messages buffered for it.
func (m *Mux) Start(id InstanceID, out *Output) error {
	key := id.Prefix(m.depth)
	if _, done := m.finished[key]; done {
		return nil
	}
	child, _, err := m.child(key)
	if err != nil {
		return err
	}
	for _, msg := range m.early.Take(key) {
		if err := child.Step(msg, out); err != nil {
			return err
		}
	}
	m.reap(key, child)
	return nil
}

func (m *Mux) child(key InstanceID) (c Protocol, created bool, err error) {
	if c, ok := m.children[key]; ok {
		return c, false, nil
	}
	c, err = m.factory(key)
	if err != nil {
		return nil, false, err
	}
	if c == nil {
		return nil, false, fmt.Errorf("core: factory returned nil for %q", key)
	}
	m.children[key] = c
	return c, true, nil
}

func (m *Mux) reap(key InstanceID, child Protocol) {
	if f, ok := child.(Finisher); ok && f.Finished() {
		delete(m.children, key)
		m.finished[key] = struct{}{}
		m.early.Discard(func(id InstanceID) bool { return id.Within(key) })
	}
}

// Child returns the running child for key, if any.
func (m *Mux) Child(key InstanceID) (Protocol, bool) {
	c, ok := m.children[key]
	return c, ok
}

// Running is the number of live children.
func (m *Mux) Running() int { return len(m.children) }

// Forget drops the finished-instance records for which old returns true,
// bounding the memory a long-lived host keeps (callers forget instances
// below a watermark that no correct replica will send to again).
func (m *Mux) Forget(old func(InstanceID) bool) {
	for id := range m.finished {
		if old(id) {
			delete(m.finished, id)
		}
	}
	m.early.Discard(old)
}

// Early exposes the early-message buffer (for metrics and tests).
func (m *Mux) Early() *EarlyBuffer { return m.early }
