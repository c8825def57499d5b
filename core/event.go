package core

import "fmt"

// Event is the closed set of things that can happen to a protocol core.
// The unexported method keeps the set closed: only this package defines
// events.
type Event interface {
	isEvent()
	fmt.Stringer
}

// Message is a protocol message received over an authenticated channel.
// From is the authenticated sender; Instance and Payload are as sent and
// must be validated by the core (they come from a possibly Byzantine peer).
//
// Checked, if non-nil, is the result of the core's pure Precheck run on a
// crypto worker pool before Step (decoded message with verified signatures
// or shares). A nil Checked means the core must decode and verify inline,
// which is what the simulator does.
type Message struct {
	From     NodeID
	Instance InstanceID
	Payload  []byte
	Checked  any
}

// Input is a request from the local parent or application, e.g. the value
// to broadcast or the proposal for an agreement.
type Input struct {
	Instance InstanceID
	Value    any
}

// TimerFired reports that a timer set through Output.SetTimer expired.
// Timers are abstract ticks: the runtime maps them to wall-clock time, the
// simulator to scheduling steps. Asynchronous protocols use none.
type TimerFired struct {
	Instance InstanceID
	Timer    string
}

// ServiceReply is the answer of a local service (the TTCB) to a request a
// core made through Output.Request.
type ServiceReply struct {
	Instance InstanceID
	Service  string
	Tag      uint64
	Reply    any
}

func (Message) isEvent()      {}
func (Input) isEvent()        {}
func (TimerFired) isEvent()   {}
func (ServiceReply) isEvent() {}

func (m Message) String() string {
	return fmt.Sprintf("msg from=%d inst=%s len=%d", m.From, m.Instance, len(m.Payload))
}
func (i Input) String() string { return fmt.Sprintf("input inst=%s value=%v", i.Instance, i.Value) }
func (t TimerFired) String() string {
	return fmt.Sprintf("timer inst=%s timer=%s", t.Instance, t.Timer)
}
func (s ServiceReply) String() string {
	return fmt.Sprintf("reply inst=%s service=%s tag=%d", s.Instance, s.Service, s.Tag)
}

// Protocol is a deterministic protocol core. Step applies one event and
// appends its effects to out. It returns an error only when a local
// invariant is broken (the replica must then halt); Byzantine input is
// dropped and reported through out.Accuse instead.
type Protocol interface {
	Step(ev Event, out *Output) error
}

// Prechecker is implemented by cores whose messages carry signatures or
// shares. Precheck is pure (no access to the core's mutable state beyond
// immutable parameters and keys) and safe to call concurrently, so the
// runtime runs it on a worker pool and hands the result to Step in
// Message.Checked. An error means the message is dropped and, if it is
// provable misbehaviour, the returned error wraps an *Evidence.
type Prechecker interface {
	Precheck(m Message) (any, error)
}

// Finisher is implemented by cores that know when they are done: after
// Finished returns true, the host may discard the core and drop further
// messages for its instance.
type Finisher interface {
	Finished() bool
}
