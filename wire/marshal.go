package wire

import (
	"fmt"

	"google.golang.org/protobuf/proto"
)

// Marshal encodes a protocol message deterministically (map fields, if any,
// sorted), as every core's Encode does. Marshalling a well-typed message
// with bounded fields cannot fail; a failure is a programming error and
// panics — Marshal never sees bytes from the network.
func Marshal(m proto.Message) []byte {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("wire: marshal %T: %v", m, err))
	}
	return b
}
