package hybrid

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/wire"
)

// Kind is the type of a payload-network message of this package.
type Kind uint8

// Message kinds. DATA and RETRANSMIT belong to BRM-T (RMulticast);
// PROPOSE, FETCH and BATCH to the ordering engine (Engine).
const (
	KindData       Kind = 1 // BRM-T: the sender's message M
	KindRetransmit Kind = 2 // BRM-T recovery: M resent to a replica missing from proposed-ok
	KindPropose    Kind = 3 // engine: a replica's batch for an epoch
	KindFetch      Kind = 4 // engine: ask for the decided batch (epoch, owner)
	KindBatch      Kind = 5 // engine: answer to FETCH
	KindResultQ    Kind = 6 // engine: ask for a TTCB result the local module withheld
	KindResult     Kind = 7 // engine: answer to RESULT_QUERY
)

func (k Kind) String() string {
	switch k {
	case KindData:
		return "DATA"
	case KindRetransmit:
		return "RETRANSMIT"
	case KindPropose:
		return "PROPOSE"
	case KindFetch:
		return "FETCH"
	case KindBatch:
		return "BATCH"
	case KindResultQ:
		return "RESULT_QUERY"
	case KindResult:
		return "RESULT"
	}
	return fmt.Sprintf("KIND(%d)", uint8(k))
}

// Message is the decoded form of every message of this package. Which
// fields are set depends on Kind: Value for DATA/RETRANSMIT; Epoch and
// Owner for FETCH; Epoch, Owner and Requests for PROPOSE/BATCH. On the
// wire it is a wire.Hybrid protobuf message (wire/hybrid.proto).
type Message struct {
	Kind     Kind
	Value    []byte
	Epoch    uint64
	Owner    core.NodeID
	Requests [][]byte
	// RESULT: the TTCB's result of execution (Epoch, Owner); Value is its
	// 32-byte value when Decided.
	Decided                 bool
	ProposedOK, ProposedAny uint64
	Module                  uint32 // attesting TTCB module (0: unattested)
	Signature               []byte // 64 bytes when Module ≠ 0
	Withheld                bool   // RESULT: the module's attested withholding
}

// Limits bound what Decode accepts.
type Limits struct {
	MaxValue    int // DATA/RETRANSMIT payload bytes
	MaxRequest  int // one request in a batch
	MaxRequests int // requests in one batch
	MaxN        int // largest replica ID (the group size)
}

// Encode marshals a message (wire.Hybrid, deterministic protobuf).
func Encode(m *Message) []byte {
	return wire.Marshal(&wire.Hybrid{Kind: wire.Hybrid_Kind(m.Kind), Value: m.Value, Epoch: m.Epoch,
		Owner: uint32(m.Owner), Requests: m.Requests, Decided: m.Decided, ProposedOk: m.ProposedOK, ProposedAny: m.ProposedAny,
		Module: m.Module, Signature: m.Signature, Withheld: m.Withheld})
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: hybrid: "+format, append([]any{wire.ErrMalformed}, args...)...)
}

// Decode parses and validates a message from the network: the fields its
// kind uses must be in range and the others absent. Errors wrap
// wire.ErrMalformed and their text depends only on the input (protobuf-go
// randomises its own error texts, so they are not passed on).
func Decode(b []byte, lim Limits) (*Message, error) {
	var w wire.Hybrid
	if err := proto.Unmarshal(b, &w); err != nil {
		return nil, malformed("%d bytes are not a protobuf message", len(b))
	}
	if w.Kind < wire.Hybrid_DATA || w.Kind > wire.Hybrid_RESULT {
		return nil, malformed("unknown kind %d", w.Kind)
	}
	m := &Message{Kind: Kind(w.Kind), Value: w.Value, Epoch: w.Epoch, Owner: core.NodeID(w.Owner), Requests: w.Requests,
		Decided: w.Decided, ProposedOK: w.ProposedOk, ProposedAny: w.ProposedAny, Module: w.Module, Signature: w.Signature, Withheld: w.Withheld}
	if m.Kind != KindResult && (m.Decided || m.ProposedOK != 0 || m.ProposedAny != 0 || m.Module != 0 || len(m.Signature) != 0 || m.Withheld) {
		return nil, malformed("%s with result fields", m.Kind)
	}
	switch m.Kind {
	case KindResultQ, KindResult:
		if m.Owner < 1 || int(m.Owner) > lim.MaxN {
			return nil, malformed("owner %d not in 1..%d", m.Owner, lim.MaxN)
		}
		if len(m.Requests) != 0 || (m.Kind == KindResultQ && len(m.Value) != 0) {
			return nil, malformed("%s with requests or a value", m.Kind)
		}
		if m.Kind == KindResult {
			if m.Decided != (len(m.Value) == 32) || (!m.Decided && len(m.Value) != 0) {
				return nil, malformed("RESULT value of %d bytes (decided %v)", len(m.Value), m.Decided)
			}
			if (m.Module == 0) != (len(m.Signature) == 0) || (m.Module != 0 && (int(m.Module) > lim.MaxN || len(m.Signature) != 64)) {
				return nil, malformed("RESULT attestation of %d bytes by module %d", len(m.Signature), m.Module)
			}
			if m.Withheld && (m.Decided || m.ProposedOK != 0 || m.ProposedAny != 0 || m.Module == 0) {
				return nil, malformed("withheld RESULT with result fields or without attestation")
			}
			full := uint64(1)<<uint(lim.MaxN) - 1
			if m.ProposedOK&^full != 0 || m.ProposedAny&^full != 0 || m.ProposedOK&^m.ProposedAny != 0 {
				return nil, malformed("RESULT masks out of range")
			}
		}
	case KindData, KindRetransmit:
		if len(m.Value) > lim.MaxValue {
			return nil, malformed("%s value of %d bytes > %d", m.Kind, len(m.Value), lim.MaxValue)
		}
		if m.Epoch != 0 || m.Owner != 0 || len(m.Requests) != 0 {
			return nil, malformed("%s with epoch, owner or requests", m.Kind)
		}
	case KindFetch, KindPropose, KindBatch:
		if m.Owner < 1 || int(m.Owner) > lim.MaxN {
			return nil, malformed("owner %d not in 1..%d", m.Owner, lim.MaxN)
		}
		if len(m.Value) != 0 || (m.Kind == KindFetch && len(m.Requests) != 0) {
			return nil, malformed("%s with a value or requests", m.Kind)
		}
		if len(m.Requests) > lim.MaxRequests {
			return nil, malformed("%d requests > %d", len(m.Requests), lim.MaxRequests)
		}
		for _, r := range m.Requests {
			if len(r) > lim.MaxRequest {
				return nil, malformed("request of %d bytes > %d", len(r), lim.MaxRequest)
			}
		}
	default:
		return nil, malformed("unknown kind %d", w.Kind)
	}
	return m, nil
}

// Describe renders a payload for simulator traces.
func Describe(payload []byte) string {
	m, err := Decode(payload, Limits{MaxValue: wire.DefaultMaxPayload, MaxRequest: wire.DefaultMaxPayload, MaxRequests: 1 << 20, MaxN: core.MaxGroupSize})
	if err != nil {
		return fmt.Sprintf("garbage(%dB)", len(payload))
	}
	switch m.Kind {
	case KindData, KindRetransmit:
		return fmt.Sprintf("%s v=%q", m.Kind, abbreviate(m.Value))
	case KindFetch:
		return fmt.Sprintf("FETCH e=%d owner=%d", m.Epoch, m.Owner)
	default:
		return fmt.Sprintf("%s e=%d owner=%d reqs=%d", m.Kind, m.Epoch, m.Owner, len(m.Requests))
	}
}

func abbreviate(v []byte) string {
	if len(v) > 16 {
		return fmt.Sprintf("%s…(%dB)", v[:12], len(v))
	}
	return string(v)
}
