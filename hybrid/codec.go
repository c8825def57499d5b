package hybrid

import (
	"encoding/binary"
	"fmt"

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
	}
	return fmt.Sprintf("KIND(%d)", uint8(k))
}

// Message is the decoded form of every message of this package. Which
// fields are set depends on Kind: Value for DATA/RETRANSMIT; Epoch and
// Owner for FETCH; Epoch, Owner and Requests for PROPOSE/BATCH.
type Message struct {
	Kind     Kind
	Value    []byte
	Epoch    uint64
	Owner    core.NodeID
	Requests [][]byte
}

// The encoding is canonical and length-checked (no protobuf: every field
// is fixed-width or u32-length-prefixed, and Decode accepts exactly what
// Encode produces, so a re-encoded message is byte-identical):
//
//	DATA, RETRANSMIT: kind u8 | len u32 | value
//	FETCH:            kind u8 | epoch u64 | owner u32
//	PROPOSE, BATCH:   kind u8 | epoch u64 | owner u32 | count u32 | (len u32 | request)*

// Encode marshals a message.
func Encode(m *Message) []byte {
	b := []byte{byte(m.Kind)}
	switch m.Kind {
	case KindData, KindRetransmit:
		b = binary.BigEndian.AppendUint32(b, uint32(len(m.Value)))
		b = append(b, m.Value...)
	case KindFetch:
		b = binary.BigEndian.AppendUint64(b, m.Epoch)
		b = binary.BigEndian.AppendUint32(b, uint32(m.Owner))
	case KindPropose, KindBatch:
		b = binary.BigEndian.AppendUint64(b, m.Epoch)
		b = binary.BigEndian.AppendUint32(b, uint32(m.Owner))
		b = binary.BigEndian.AppendUint32(b, uint32(len(m.Requests)))
		for _, r := range m.Requests {
			b = binary.BigEndian.AppendUint32(b, uint32(len(r)))
			b = append(b, r...)
		}
	}
	return b
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: hybrid: "+format, append([]any{wire.ErrMalformed}, args...)...)
	}
}

func (d *decoder) u32() uint32 {
	if len(d.b) < 4 {
		d.fail("truncated")
		return 0
	}
	v := binary.BigEndian.Uint32(d.b)
	d.b = d.b[4:]
	return v
}

func (d *decoder) u64() uint64 {
	if len(d.b) < 8 {
		d.fail("truncated")
		return 0
	}
	v := binary.BigEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) bytes(max int) []byte {
	n := d.u32()
	if d.err != nil {
		return nil
	}
	if uint64(n) > uint64(max) || uint64(n) > uint64(len(d.b)) {
		d.fail("field of %d bytes (max %d, %d left)", n, max, len(d.b))
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

// Limits bound what Decode accepts.
type Limits struct {
	MaxValue    int // DATA/RETRANSMIT payload bytes
	MaxRequest  int // one request in a batch
	MaxRequests int // requests in one batch
	MaxN        int // largest replica ID (the group size)
}

// Decode parses and validates a message from the network. Errors wrap
// wire.ErrMalformed and their text depends only on the input.
func Decode(b []byte, lim Limits) (*Message, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: hybrid: empty message", wire.ErrMalformed)
	}
	d := &decoder{b: b[1:]}
	m := &Message{Kind: Kind(b[0])}
	switch m.Kind {
	case KindData, KindRetransmit:
		m.Value = d.bytes(lim.MaxValue)
	case KindFetch, KindPropose, KindBatch:
		m.Epoch = d.u64()
		m.Owner = core.NodeID(d.u32())
		if d.err == nil && (m.Owner < 1 || int(m.Owner) > lim.MaxN) {
			d.fail("owner %d not in 1..%d", m.Owner, lim.MaxN)
		}
		if m.Kind != KindFetch {
			count := d.u32()
			if d.err == nil && (uint64(count) > uint64(lim.MaxRequests) || uint64(count)*4 > uint64(len(d.b))) {
				d.fail("%d requests (max %d)", count, lim.MaxRequests)
			}
			for i := uint32(0); d.err == nil && i < count; i++ {
				r := d.bytes(lim.MaxRequest)
				if d.err == nil {
					m.Requests = append(m.Requests, r)
				}
			}
		}
	default:
		return nil, fmt.Errorf("%w: hybrid: unknown kind %d", wire.ErrMalformed, b[0])
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return nil, d.err
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
