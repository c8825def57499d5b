package transport

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/maftia/maftia/core"
)

// The hello frame is the first frame each side sends after the TLS
// handshake: a magic string with a version, the NodeID the sender claims
// and the cluster identifier. The claimed ID must be the member whose
// pinned key the peer proved in the handshake, and the cluster must match.
//
//	"maftia-hello/1" | uint32 id | uint16 len | cluster bytes
const helloMagic = "maftia-hello/1"

// MaxClusterID bounds the cluster identifier.
const MaxClusterID = 256

// ErrBadHello is wrapped by every hello decoding error.
var ErrBadHello = errors.New("transport: malformed hello")

type hello struct {
	ID      core.NodeID
	Cluster string
}

func (h hello) encode() []byte {
	b := make([]byte, 0, len(helloMagic)+6+len(h.Cluster))
	b = append(b, helloMagic...)
	b = binary.BigEndian.AppendUint32(b, uint32(h.ID))
	b = binary.BigEndian.AppendUint16(b, uint16(len(h.Cluster)))
	return append(b, h.Cluster...)
}

func decodeHello(b []byte) (hello, error) {
	if len(b) < len(helloMagic)+6 || string(b[:len(helloMagic)]) != helloMagic {
		return hello{}, fmt.Errorf("%w: bad magic or short", ErrBadHello)
	}
	b = b[len(helloMagic):]
	id := binary.BigEndian.Uint32(b)
	n := int(binary.BigEndian.Uint16(b[4:]))
	b = b[6:]
	if n != len(b) || n > MaxClusterID {
		return hello{}, fmt.Errorf("%w: cluster length %d, %d bytes left", ErrBadHello, n, len(b))
	}
	return hello{ID: core.NodeID(id), Cluster: string(b)}, nil
}
