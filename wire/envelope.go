package wire

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/maftia/maftia/core"
)

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("wire: malformed message")

// DefaultMaxPayload bounds an envelope's payload unless a caller sets its own.
const DefaultMaxPayload = 16 << 20

// Msg is a decoded, validated envelope.
type Msg struct {
	Sender   core.NodeID
	Instance core.InstanceID
	Payload  []byte
}

// EncodeEnvelope encodes one message for the network.
func EncodeEnvelope(m Msg) ([]byte, error) {
	return proto.MarshalOptions{Deterministic: true}.Marshal(&Envelope{
		Sender: uint32(m.Sender), Instance: string(m.Instance), Payload: m.Payload,
	})
}

// DecodeEnvelope decodes and validates bytes from the network: the sender
// must be a member of a group of n replicas, the instance ID canonical and
// the payload at most maxPayload bytes.
func DecodeEnvelope(b []byte, n int, maxPayload int) (Msg, error) {
	if len(b) > maxPayload+core.MaxInstanceLen+32 {
		return Msg{}, fmt.Errorf("%w: envelope of %d bytes", ErrMalformed, len(b))
	}
	var e Envelope
	if err := proto.Unmarshal(b, &e); err != nil {
		return Msg{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if e.Sender < 1 || int(e.Sender) > n {
		return Msg{}, fmt.Errorf("%w: sender %d not in 1..%d", ErrMalformed, e.Sender, n)
	}
	inst, err := core.ParseInstanceID(e.Instance)
	if err != nil {
		return Msg{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if len(e.Payload) > maxPayload {
		return Msg{}, fmt.Errorf("%w: payload of %d bytes > %d", ErrMalformed, len(e.Payload), maxPayload)
	}
	return Msg{Sender: core.NodeID(e.Sender), Instance: inst, Payload: e.Payload}, nil
}
