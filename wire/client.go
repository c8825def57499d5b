package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The client protocol (docs/adr/0002-client-api.md): over a TLS 1.3
// connection to a replica's client address, both sides exchange frames
// of a 4-byte big-endian length N, then N bytes: one kind byte and a body.
//
//	client → replica  FrameRequest  body: a ClientRequest (protobuf)
//	client → replica  FrameRequestCertified  the same, asking for a reply share
//	                  of the service's threshold signature (Reply.share)
//	replica → client  FrameReply    body: a Reply (protobuf), signed by the replica
//	replica → client  FrameRefused  body: client (8 bytes), seq (8 bytes), reason (UTF-8)
//
// A refusal is advisory and unsigned: a client never trusts one replica's
// refusal, it only stops waiting when f+1 replicas refuse or its deadline passes.
const (
	FrameRequest byte = 1
	FrameReply   byte = 2
	FrameRefused byte = 3
	// FrameRequestCertified is FrameRequest asking each replica to add
	// its share of the service's threshold signature to its reply.
	FrameRequestCertified byte = 4
)

// MaxClientFrame bounds every client-protocol frame (a request of at most
// smr's 64 KiB bound plus its envelope, or a reply with a range result).
const MaxClientFrame = 1 << 20

// ErrFrameTooLarge is returned for a length prefix above the bound.
var ErrFrameTooLarge = errors.New("wire: client frame too large")

// WriteClientFrame writes one frame.
func WriteClientFrame(w io.Writer, kind byte, body []byte) error {
	if len(body)+1 > MaxClientFrame {
		return fmt.Errorf("%w: %d bytes", ErrFrameTooLarge, len(body)+1)
	}
	buf := make([]byte, 5, 5+len(body))
	binary.BigEndian.PutUint32(buf, uint32(len(body)+1))
	buf[4] = kind
	_, err := w.Write(append(buf, body...))
	return err
}

// ReadClientFrame reads one frame of at most max bytes. An oversized
// length returns ErrFrameTooLarge without reading the body.
func ReadClientFrame(r io.Reader, max int) (kind byte, body []byte, err error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 {
		return 0, nil, fmt.Errorf("%w: empty client frame", ErrMalformed)
	}
	if uint64(n) > uint64(max) {
		return 0, nil, fmt.Errorf("%w: %d > %d bytes", ErrFrameTooLarge, n, max)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return 0, nil, fmt.Errorf("%w: truncated client frame: %v", ErrMalformed, err)
	}
	return b[0], b[1:], nil
}

// Refusal is a replica's notice that it dropped a request.
type Refusal struct {
	Client, Seq uint64
	Reason      string
}

// EncodeRefusal renders a refusal body.
func EncodeRefusal(r Refusal) []byte {
	b := binary.BigEndian.AppendUint64(nil, r.Client)
	b = binary.BigEndian.AppendUint64(b, r.Seq)
	return append(b, r.Reason...)
}

// DecodeRefusal parses a refusal body.
func DecodeRefusal(b []byte) (Refusal, error) {
	if len(b) < 16 || len(b) > 16+1024 {
		return Refusal{}, fmt.Errorf("%w: refusal of %d bytes", ErrMalformed, len(b))
	}
	return Refusal{Client: binary.BigEndian.Uint64(b), Seq: binary.BigEndian.Uint64(b[8:]), Reason: string(b[16:])}, nil
}
