package core

import "fmt"

// Output collects the effects of one or more Steps. The runtime performs
// them in this order: Persist (durably), then Sends, Deliveries, Timers,
// Requests; Evidence is reported to membership/failure detection.
// A core only appends; the runtime calls Reset after performing the effects.
type Output struct {
	Persist    []Record
	Sends      []Send
	Deliveries []Delivery
	Timers     []TimerOp
	Requests   []ServiceRequest
	Evidence   []Evidence
}

// Record is state that must be durable before any message of the same
// Output leaves the replica (e.g. "I sent READY for digest h").
type Record struct {
	Instance InstanceID
	Key      string
	Value    []byte
}

// Send is a message to one replica, or to all (To == Everyone).
type Send struct {
	To       NodeID
	Instance InstanceID
	Payload  []byte
}

// Delivery is a result handed to the parent or the application.
type Delivery struct {
	Instance InstanceID
	Value    any
}

// TimerOp sets (After > 0) or cancels (After == 0) a timer.
type TimerOp struct {
	Instance InstanceID
	Timer    string
	After    uint64 // in ticks; 0 cancels
}

// ServiceRequest asks a local service (the TTCB) for something; the answer
// comes back as a ServiceReply with the same Tag.
type ServiceRequest struct {
	Instance InstanceID
	Service  string
	Tag      uint64
	Request  any
}

// EvidenceKind classifies misbehaviour.
type EvidenceKind string

const (
	// Malformed: bytes that do not decode, or fields out of range.
	Malformed EvidenceKind = "malformed"
	// InvalidProof: a signature, share or proof that does not verify.
	InvalidProof EvidenceKind = "invalid-proof"
	// Equivocation: two conflicting authenticated messages for one slot.
	Equivocation EvidenceKind = "equivocation"
	// Unexpected: a message the sender's role forbids (e.g. SEND from a
	// replica that is not the broadcaster).
	Unexpected EvidenceKind = "unexpected"
	// Flooding: more early messages than the per-sender bound allows.
	Flooding EvidenceKind = "flooding"
)

// Evidence names a replica that misbehaved and how. Evidence from an
// authenticated channel is attributable but, unless it carries signed
// messages, not transferable to third parties.
type Evidence struct {
	Accused  NodeID
	Kind     EvidenceKind
	Instance InstanceID
	Detail   string
}

func (e *Evidence) Error() string {
	return fmt.Sprintf("evidence against %d (%s) in %s: %s", e.Accused, e.Kind, e.Instance, e.Detail)
}

// SendTo appends a message to one replica.
func (o *Output) SendTo(to NodeID, inst InstanceID, payload []byte) {
	o.Sends = append(o.Sends, Send{To: to, Instance: inst, Payload: payload})
}

// Broadcast appends a message to every replica, the sender included.
func (o *Output) Broadcast(inst InstanceID, payload []byte) {
	o.Sends = append(o.Sends, Send{To: Everyone, Instance: inst, Payload: payload})
}

// Deliver appends a delivery to the parent or application.
func (o *Output) Deliver(inst InstanceID, v any) {
	o.Deliveries = append(o.Deliveries, Delivery{Instance: inst, Value: v})
}

// PersistRecord appends a record that must be durable before sending.
func (o *Output) PersistRecord(inst InstanceID, key string, value []byte) {
	o.Persist = append(o.Persist, Record{Instance: inst, Key: key, Value: value})
}

// SetTimer asks for a TimerFired after the given number of ticks (> 0).
func (o *Output) SetTimer(inst InstanceID, timer string, after uint64) {
	if after == 0 {
		after = 1
	}
	o.Timers = append(o.Timers, TimerOp{Instance: inst, Timer: timer, After: after})
}

// CancelTimer cancels a timer.
func (o *Output) CancelTimer(inst InstanceID, timer string) {
	o.Timers = append(o.Timers, TimerOp{Instance: inst, Timer: timer})
}

// Request appends a service request.
func (o *Output) Request(inst InstanceID, service string, tag uint64, req any) {
	o.Requests = append(o.Requests, ServiceRequest{Instance: inst, Service: service, Tag: tag, Request: req})
}

// Accuse records evidence of misbehaviour by a replica.
func (o *Output) Accuse(who NodeID, kind EvidenceKind, inst InstanceID, format string, args ...any) {
	o.Evidence = append(o.Evidence, Evidence{Accused: who, Kind: kind, Instance: inst, Detail: fmt.Sprintf(format, args...)})
}

// Empty reports whether there is nothing to do.
func (o *Output) Empty() bool {
	return len(o.Persist) == 0 && len(o.Sends) == 0 && len(o.Deliveries) == 0 &&
		len(o.Timers) == 0 && len(o.Requests) == 0 && len(o.Evidence) == 0
}

// Reset empties the output, keeping capacity.
func (o *Output) Reset() {
	clear(o.Persist)
	clear(o.Sends)
	clear(o.Deliveries)
	clear(o.Timers)
	clear(o.Requests)
	clear(o.Evidence)
	o.Persist = o.Persist[:0]
	o.Sends = o.Sends[:0]
	o.Deliveries = o.Deliveries[:0]
	o.Timers = o.Timers[:0]
	o.Requests = o.Requests[:0]
	o.Evidence = o.Evidence[:0]
}
